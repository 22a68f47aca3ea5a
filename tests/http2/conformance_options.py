# HTTP/2 conformance (conformance.py): negotiation (ALPN over TLS, prior knowledge), the
# http2 options (concurrency and header list limits), and a drain on reload (GOAWAY).

import os
import signal

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import (expect_ok, origin_body, raw_until_closed, SLOW_BODY,
                                 open_slow_stream)


# ---- negotiation and the http2 options ----

@case
def tls_alpn_h2(env):
    """RFC 9113 §3.2: over TLS, ALPN "h2" selects HTTP/2 and requests are served."""
    c = env.conn("tls", handshake=False)
    if c.alpn != "h2":
        raise Failure("ALPN selected %r" % c.alpn)
    c.handshake()
    st = expect_ok(c.get("/"))
    if bytes(st.data) != origin_body(env):
        raise Failure("body %r" % bytes(st.data))


@case
def tls_alpn_http11(env):
    """RFC 7301 §3.2, RFC 9113 §3.2: a TLS client offering only http/1.1 gets HTTP/1.1."""
    c = env.conn("tls", handshake=False, alpn=("http/1.1",))
    if c.alpn not in ("http/1.1", None):
        raise Failure("ALPN selected %r" % c.alpn)
    c.send(b"GET / HTTP/1.1\r\nHost: h2.test\r\nConnection: close\r\n\r\n")
    data, _ = raw_until_closed(c)
    if not data.startswith(b"HTTP/1.1 200") or not data.endswith(origin_body(env)):
        raise Failure("answer %r" % data[:100])


@case
def alpn_off_refuses_preface(env):
    """RFC 9113 §3.3 (a server that does not take prior knowledge): with "alpn": ["http/1.1"] the preface is refused as HTTP/1.1 (400)."""
    c = env.conn("h1only", handshake=False)
    c.send(PREFACE + settings_frame())
    data, _ = raw_until_closed(c)
    if not data.startswith(b"HTTP/1.1 400"):
        raise Failure("answer %r" % data[:100])


@case
def options_settings_from_config(env):
    """RFC 9113 §6.5.2: SETTINGS_MAX_CONCURRENT_STREAMS is http2.max_concurrent_streams (8) and SETTINGS_MAX_HEADER_LIST_SIZE, when sent, http2.max_header_list_size (16 KiB)."""
    c = env.conn("small")
    s = c.server_settings
    if s.get(MAX_CONCURRENT_STREAMS) != 8 or s.get(MAX_HEADER_LIST_SIZE, 16384) != 16384:
        raise Failure("SETTINGS %s" % s)


@case
def options_concurrency_limit(env):
    """RFC 9113 §5.1.2: with max_concurrent_streams 8, the 9th concurrent stream is refused (REFUSED_STREAM or PROTOCOL_ERROR) and the 8 others answered — or the connection ends with PROTOCOL_ERROR."""
    c = env.conn("small")
    c.expect_alive()
    sids = [open_slow_stream(c, 500) for _ in range(8)]
    ninth = open_slow_stream(c, 500)
    note = c.expect_stream_error(ninth, (REFUSED_STREAM, PROTOCOL_ERROR))
    if note.startswith("RST_STREAM"):
        for sid in sids:
            expect_ok(c.response(sid))
    return note


def header_list_request(c, path, total):
    """A request whose decoded header list is about `total` bytes, sent compactly: one
    4000-byte field added to the dynamic table, then referenced again and again (RFC 7541 §2.3.2).
    The connection's own encoder no longer matches molt's table afterwards: send nothing more."""
    value = "h" * 4000
    per = len("x-big") + len(value) + 32
    refs = max(0, total // per - 1)
    encoded = block(request_fields(path)) + literal_indexed("x-big", value) + indexed(62) * refs
    return c.send_block(encoded)


def expect_refused_header_list(c, sid):
    st = c.stream(sid)
    c.wait(lambda: st.reset is not None or st.headers is not None or c.closed or
           c.error_goaway() is not None)
    if st.headers is not None:
        if st.status != 431:
            raise Failure("an oversized header list was answered %s" % st.status)
        return "431"
    if st.reset is not None:
        return "RST_STREAM %s" % error_name(st.reset)
    if c.closed or c.error_goaway():
        return "connection closed %s" % (c.error_goaway() or "")
    raise Failure("no answer to an oversized header list: " + c.describe())


@case
def options_header_list_limit(env):
    """RFC 9113 §6.5.2, §10.5.1: a header list over http2.max_header_list_size (16 KiB here) is refused (431 or RST_STREAM), never forwarded; one under it is served."""
    c = env.conn("small")
    note = expect_refused_header_list(c, header_list_request(c, "/py/over16k", 24000))
    c2 = env.conn("small")
    expect_ok(c2.response(header_list_request(c2, "/py/under16k", 10000)))
    if env.py.seen(lambda r: r["target"] == "/py/over16k"):
        raise Failure("the oversized request was forwarded")
    return note


@case
def header_list_default_limit(env):
    """RFC 9113 §6.5.2, §10.5.1: by default a header list over 64 KiB is refused (431 or RST_STREAM) and one of 40 KB served."""
    c = env.conn()
    note = expect_refused_header_list(c, header_list_request(c, "/py/over64k", 100000))
    c2 = env.conn()
    expect_ok(c2.response(header_list_request(c2, "/py/under64k", 40000)))
    if env.py.seen(lambda r: r["target"] == "/py/over64k"):
        raise Failure("the oversized request was forwarded")
    return note


# ---- drain ----

@case
def drain_goaway_finishes_streams(env):
    """RFC 9113 §6.8: on a reload the draining worker sends GOAWAY (NO_ERROR, last stream id covering the stream in flight), answers that stream in full, then closes the connection; a new connection is served by the new generation."""
    molt = env.molt("drain")
    c = env.conn("drain")
    sid = open_slow_stream(c, 1500)
    expect_ok(c.get("/"))  # stream 3: stream 1 is surely with the worker too
    start = molt.child.line_count()
    os.kill(molt.pid, signal.SIGHUP)
    if not c.wait(lambda: c.goaways, 10 * TIME_SCALE):
        raise Failure("no GOAWAY after the reload: " + c.describe())
    st = expect_ok(c.response(sid, 10 * TIME_SCALE))
    if bytes(st.data) != SLOW_BODY:
        raise Failure("the stream in flight got %r" % bytes(st.data))
    if not c.wait_closed(10 * TIME_SCALE):
        raise Failure("the draining connection stayed open: " + c.describe())
    if any(code != NO_ERROR for _, code, _ in c.goaways) or c.goaways[-1][0] < 3:
        raise Failure("GOAWAYs %s: expected NO_ERROR, the last naming stream 3 or above" %
                      c.goaways)
    if not molt.child.wait_line(r"generation 2 serving", 20 * TIME_SCALE, start):
        raise Failure("no generation 2")
    c2 = env.conn("drain")
    expect_ok(c2.get("/"))
