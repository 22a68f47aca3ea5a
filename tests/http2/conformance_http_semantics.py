# HTTP/2 conformance (conformance.py): the HTTP semantics of RFC 9113 §8: each malformed
# request must be reset (or answered 4xx) and must never reach the origin.

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from conformance_helpers import expect_ok, malformed, py_fields


# ---- HTTP semantics: malformed requests (RFC 9113 §8) ----

@case
def http_uppercase_field_name(env):
    """RFC 9113 §8.2: a field name with uppercase letters makes the request malformed: RST_STREAM PROTOCOL_ERROR, not forwarded."""
    return malformed(env, "uppercase", py_fields(extra=[("X-Upper", "1")]))


@case
def http_connection_field(env):
    """RFC 9113 §8.2.2: a connection-specific field (connection) makes the request malformed."""
    return malformed(env, "connection", py_fields(extra=[("connection", "keep-alive")]))


@case
def http_keep_alive_field(env):
    """RFC 9113 §8.2.2: keep-alive is connection-specific: the request is malformed."""
    return malformed(env, "keep-alive", py_fields(extra=[("keep-alive", "timeout=5")]))


@case
def http_proxy_connection_field(env):
    """RFC 9113 §8.2.2: proxy-connection is connection-specific: the request is malformed."""
    return malformed(env, "proxy-connection", py_fields(extra=[("proxy-connection", "keep-alive")]))


@case
def http_transfer_encoding_field(env):
    """RFC 9113 §8.2.2: transfer-encoding is connection-specific: the request is malformed (and never reaches the HTTP/1.1 server)."""
    return malformed(env, "transfer-encoding",
                     py_fields("/py/m", "POST", extra=[("transfer-encoding", "chunked")]),
                     data=b"5\r\nhello\r\n0\r\n\r\n")


@case
def http_upgrade_field(env):
    """RFC 9113 §8.2.2: upgrade is connection-specific: the request is malformed."""
    return malformed(env, "upgrade", py_fields(extra=[("upgrade", "websocket")]))


@case
def http_te_not_trailers(env):
    """RFC 9113 §8.2.2: te with another value than "trailers" makes the request malformed."""
    return malformed(env, "te-gzip", py_fields(extra=[("te", "gzip")]))


@case
def http_te_trailers_accepted(env):
    """RFC 9113 §8.2.2: te: trailers is allowed: the request is answered."""
    c = env.conn()
    expect_ok(c.get("/", extra=[("te", "trailers")]))


@case
def http_missing_method(env):
    """RFC 9113 §8.3.1: a request without :method is malformed."""
    return malformed(env, "no-method", [f for f in py_fields() if f[0] != ":method"])


@case
def http_missing_scheme(env):
    """RFC 9113 §8.3.1: a request without :scheme is malformed."""
    return malformed(env, "no-scheme", [f for f in py_fields() if f[0] != ":scheme"])


@case
def http_missing_path(env):
    """RFC 9113 §8.3.1: a request without :path is malformed."""
    return malformed(env, "no-path", [f for f in py_fields() if f[0] != ":path"])


@case
def http_empty_path(env):
    """RFC 9113 §8.3.1: an empty :path is malformed."""
    return malformed(env, "empty-path", [(n, "" if n == ":path" else v) for n, v in py_fields()])


@case
def http_duplicate_method(env):
    """RFC 9113 §8.3.1: :method twice makes the request malformed."""
    return malformed(env, "dup-method", py_fields()[:1] + py_fields())


@case
def http_duplicate_path(env):
    """RFC 9113 §8.3.1: :path twice makes the request malformed."""
    return malformed(env, "dup-path", py_fields() + [(":path", "/py/other")])


@case
def http_unknown_pseudo_field(env):
    """RFC 9113 §8.3: a pseudo-header field not defined for requests (:foo) makes the request malformed."""
    return malformed(env, "unknown-pseudo", py_fields() + [(":foo", "bar")])


@case
def http_response_pseudo_in_request(env):
    """RFC 9113 §8.3: a response pseudo-header field (:status) in a request makes it malformed."""
    return malformed(env, "status-in-request", py_fields() + [(":status", "200")])


@case
def http_pseudo_after_regular(env):
    """RFC 9113 §8.3: pseudo-header fields come before regular ones; one after makes the request malformed."""
    fields = py_fields()
    return malformed(env, "pseudo-after", fields[:3] + [("x-first", "1")] + fields[3:])


@case
def http_pseudo_in_trailers(env):
    """RFC 9113 §8.1: trailers must not hold pseudo-header fields."""
    return malformed(env, "pseudo-trailer", py_fields("/py/m", "POST"), data=b"abc",
                     trailers=[(":method", "GET")])


@case
def http_trailers_without_end_stream(env):
    """RFC 9113 §8.1: a trailer section's HEADERS carries END_STREAM; one without it is malformed (PROTOCOL_ERROR)."""
    c = env.conn()
    sid = c.send_block(block(py_fields("/py/trail", "POST")), end_stream=False)
    c.send(data_frame(sid, b"abc") + frame(HEADERS, END_HEADERS, sid, block([("x-t", "1")])))
    return c.expect_stream_error(sid, PROTOCOL_ERROR, allow_http_error=True)


@case
def http_content_length_short(env):
    """RFC 9113 §8.1.1: content-length larger than the DATA sent before END_STREAM makes the request malformed."""
    c = env.conn()
    sid = c.send_block(block(py_fields("/py/cl", "POST", extra=[("content-length", "10")])),
                       end_stream=False)
    c.send(data_frame(sid, b"12345", end_stream=True))
    return c.expect_stream_error(sid, PROTOCOL_ERROR, allow_http_error=True)


@case
def http_content_length_long(env):
    """RFC 9113 §8.1.1: DATA beyond content-length makes the request malformed."""
    c = env.conn()
    sid = c.send_block(block(py_fields("/py/cl", "POST", extra=[("content-length", "3")])),
                       end_stream=False)
    c.send(data_frame(sid, b"1234567890", end_stream=True))
    return c.expect_stream_error(sid, PROTOCOL_ERROR, allow_http_error=True)


@case
def http_field_value_crlf(env):
    """RFC 9113 §8.2.1: a field value with CR or LF makes the request malformed (and must never reach an HTTP/1.1 server)."""
    return malformed(env, "crlf", py_fields(extra=[("x-a", "1\r\nx-injected: 2")]))


@case
def http_field_value_nul(env):
    """RFC 9113 §8.2.1: a field value with NUL makes the request malformed."""
    return malformed(env, "nul", py_fields(extra=[("x-a", "a\x00b")]))


@case
def http_field_value_leading_space(env):
    """RFC 9113 §8.2.1: a field value starting with whitespace makes the request malformed."""
    return malformed(env, "leading-ws", py_fields(extra=[("x-a", " padded")]))


@case
def http_field_name_invalid_char(env):
    """RFC 9113 §8.2.1: a field name with a character outside a token (a space) makes the request malformed."""
    return malformed(env, "name-space", py_fields(extra=[("x a", "1")]))


@case
def http_field_name_empty(env):
    """RFC 9113 §8.2.1 (RFC 9110 §5.1): an empty field name makes the request malformed."""
    return malformed(env, "name-empty", py_fields(extra=[("", "1")]))
