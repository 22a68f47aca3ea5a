# HTTP/2 conformance (conformance.py): requests end to end through molt to the test origins:
# bodies both ways, trailers, HEAD, statuses, concurrent streams, cookies, :authority.

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, origin_body


# ---- end to end through molt ----

@case
def e2e_get(env):
    """RFC 9113 §8.1: GET / through molt: :status 200 and the origin's body."""
    c = env.conn()
    st = expect_ok(c.get("/"))
    if bytes(st.data) != origin_body(env):
        raise Failure("body %r" % bytes(st.data))
    if c.violations:
        raise Failure(c.violations[0])


@case
def e2e_h2_library_client(env):
    """RFC 9113 §3.3: python3-h2's client (strict about what a server sends) gets GET / and a POST /echo answered."""
    port = env.port("h2")
    status, _, body, _ = h2lib_request(port)
    if status != 200 or body != origin_body(env):
        raise Failure("GET: %s %r" % (status, body[:60]))
    status, fields, body, _ = h2lib_request(port, "POST", "/echo", b"posted by h2\n" * 50)
    if status != 200 or body != b"posted by h2\n" * 50:
        raise Failure("POST: %s %r" % (status, body[:60]))


@case
def e2e_response_fields_valid(env):
    """RFC 9113 §8.2, §8.2.2, §8.3.2: responses carry :status first, lowercase names and no connection-specific field (the origin's Connection: close and chunked Transfer-Encoding are dropped)."""
    c = env.conn()
    for path in ("/close", "/slow-body?ms=1&chunks=3", "/"):
        st = expect_ok(c.get(path))
        names = [n for n, _ in st.headers]
        if names[0] != ":status":
            raise Failure("%s: fields start with %s" % (path, names[0]))
        bad = [n for n in names if n != n.lower() or n in
               ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")]
        if bad or st.header("x-origin") != env.origin_name:
            raise Failure("%s: response fields %s" % (path, st.headers))


@case
def e2e_post_echo(env):
    """RFC 9113 §8.1: POST with a body and content-length: /echo returns the body."""
    c = env.conn()
    body = b"hello over h2\n" * 100
    sid = c.request(request_fields("/echo", "POST", extra=[("content-length", str(len(body)))]),
                    body)
    st = expect_ok(c.response(sid))
    if bytes(st.data) != body:
        raise Failure("echo differs: %r" % bytes(st.data)[:60])


@case
def e2e_post_without_content_length(env):
    """RFC 9113 §8.1: a body without content-length (ended by END_STREAM) reaches the HTTP/1.1 origin whole."""
    c = env.conn()
    body = b"no length " * 500
    sid = c.request(request_fields("/py/nolength", "POST"), body, frame_size=777)
    expect_ok(c.response(sid))
    got = env.py.seen(lambda r: r["target"] == "/py/nolength")
    if not got or got[-1]["body"] != body:
        raise Failure("the origin got %r" % (got[-1]["body"][:60] if got else None))


@case
def e2e_request_trailers(env):
    """RFC 9113 §8.1: a request with trailers (HEADERS after DATA, with END_STREAM) is answered; the origin gets its body."""
    c = env.conn()
    sid = c.send_headers(request_fields("/py/reqtrailers", "POST", extra=[("te", "trailers")]),
                         end_stream=False)
    c.send_data(sid, b"body before trailers", end_stream=False)
    c.send_headers([("x-trailer", "value")], sid=sid, end_stream=True)
    expect_ok(c.response(sid))
    got = env.py.seen(lambda r: r["target"] == "/py/reqtrailers")
    if not got or got[-1]["body"] != b"body before trailers":
        raise Failure("the origin got %r" % (got[-1] if got else None))


@case
def e2e_response_trailers(env):
    """RFC 9113 §8.1: a chunked HTTP/1.1 response's trailer fields come as a trailing HEADERS with END_STREAM, without pseudo-header fields."""
    c = env.conn()
    st = expect_ok(c.get("/py/trailers", extra=[("te", "trailers")]))
    if bytes(st.data) != b"".join(env.py.TRAILERS_BODY):
        raise Failure("body %r" % bytes(st.data))
    trailers = dict(st.trailers or [])
    if trailers.get("x-checksum") != "5eb63bbb" or trailers.get("x-count") != "3" or \
            any(n.startswith(":") for n in trailers):
        raise Failure("trailers %s" % st.trailers)


@case
def e2e_head(env):
    """RFC 9113 §8.1: HEAD is answered with the fields of GET (content-length) and no DATA."""
    c = env.conn()
    sid = c.request(request_fields("/size/5000", "HEAD"))
    st = expect_ok(c.response(sid))
    if st.data or st.header("content-length") not in ("5000", None):
        raise Failure("HEAD: %d bytes of DATA, content-length %s" %
                      (len(st.data), st.header("content-length")))


@case
def e2e_status_passed_on(env):
    """RFC 9113 §8.3.2: the origin's status is :status (404 with its body, 204 without DATA)."""
    c = env.conn()
    st = expect_ok(c.get("/status/404"), 404)
    if b"404" not in bytes(st.data):
        raise Failure("404 body %r" % bytes(st.data))
    st = expect_ok(c.get("/status/204"), 204)
    if st.data:
        raise Failure("204 with %d bytes" % len(st.data))


@case
def e2e_concurrent_streams(env):
    """RFC 9113 §5.1.2, §5.2: 50 streams at once on one connection each get their own response."""
    c = env.conn()
    sids = {c.send_headers(request_fields("/size/%d" % (1000 + 97 * i))): 1000 + 97 * i
            for i in range(50)}
    for sid, size in sids.items():
        st = expect_ok(c.response(sid, 20 * TIME_SCALE))
        if bytes(st.data) != size_body(0, size):
            raise Failure("stream %d: %d bytes, expected %d" % (sid, len(st.data), size))
    if c.violations:
        raise Failure(c.violations[0])


@case
def e2e_cookies_joined(env):
    """RFC 9113 §8.2.3: split cookie fields are joined with "; " before going to an HTTP/1.1 server."""
    c = env.conn()
    st = expect_ok(c.get("/headers", extra=[("cookie", "a=1"), ("cookie", "b=2")]))
    lines = [l for l in bytes(st.data).decode("latin-1").split("\n")
             if l.lower().startswith("cookie:")]
    if lines != ["cookie: a=1; b=2"] and [l.lower() for l in lines] != ["cookie: a=1; b=2"]:
        raise Failure("the origin saw cookie lines %s" % lines)


@case
def e2e_authority_is_host(env):
    """RFC 9113 §8.3.1: :authority becomes the HTTP/1.1 Host."""
    c = env.conn()
    st = expect_ok(c.get("/headers", authority="h2.example:8080"))
    lines = [l.lower() for l in bytes(st.data).decode("latin-1").split("\n")]
    if "host: h2.example:8080" not in lines:
        raise Failure("the origin saw %s" % lines)


@case
def e2e_host_without_authority(env):
    """RFC 9113 §8.3.1: a request with a host field and no :authority is served with that host."""
    c = env.conn()
    fields = [f for f in request_fields("/headers") if f[0] != ":authority"] + \
        [("host", "via-host.test")]
    st = expect_ok(c.response(c.send_headers(fields)))
    if "host: via-host.test" not in bytes(st.data).decode("latin-1").lower():
        raise Failure("the origin saw %r" % bytes(st.data))


@case
def e2e_sequential_streams_carry_nothing_over(env):
    """RFC 9113 §8.1: one stream is one exchange: streams one after another on a connection (molt serves them with one parked session) each reach the origin with only their own fields, method, authority and body."""
    c = env.conn()
    for i in range(12):
        path = "/py/seq-%d" % i
        extra = [("x-only-on", str(i))] if i % 3 == 0 else []
        if i % 4 == 1:
            body = b"body of %d " % i * (50 + i)
            sid = c.request(request_fields(path, "POST", authority="seq%d.test" % i, extra=extra
                                           + [("content-length", str(len(body)))]), body)
        else:
            body = b""
            sid = c.request(request_fields(path, authority="seq%d.test" % i, extra=extra))
        expect_ok(c.response(sid))
        got = env.py.seen(lambda r, p=path: r["target"] == p)
        if len(got) != 1:
            raise Failure("%s reached the origin %d times" % (path, len(got)))
        fields = dict(got[0]["fields"])
        marks = [v for n, v in got[0]["fields"] if n == "x-only-on"]
        if marks != ([str(i)] if i % 3 == 0 else []):
            raise Failure("%s: x-only-on %s" % (path, marks))
        if got[0]["method"] != ("POST" if i % 4 == 1 else "GET") or got[0]["body"] != body:
            raise Failure("%s: %s with %d body bytes" % (path, got[0]["method"],
                                                          len(got[0]["body"])))
        if fields.get("host") != "seq%d.test" % i or "connection" in fields:
            raise Failure("%s: host %s, connection %s" % (path, fields.get("host"),
                                                           fields.get("connection")))
    if c.violations:
        raise Failure(c.violations[0])
