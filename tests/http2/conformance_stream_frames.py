# HTTP/2 conformance (conformance.py): the rules of DATA, HEADERS (with CONTINUATION),
# PRIORITY and RST_STREAM (RFC 9113 §6.1-6.4, §6.10).

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, open_slow_stream


# ---- DATA, HEADERS, PRIORITY, RST_STREAM (RFC 9113 §6.1-6.4) ----

@case
def data_on_stream_zero(env):
    """RFC 9113 §6.1: DATA on stream 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(data_frame(0, b"x"))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def data_invalid_padding(env):
    """RFC 9113 §6.1: a pad length not less than the payload is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    sid = c.send_headers(request_fields("/py/upload", "POST"), end_stream=False)
    c.send(frame(DATA, PADDED | END_STREAM, sid, bytes([10]) + b"abc"))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def data_padding_removed(env):
    """RFC 9113 §6.1: padding is not data: padded DATA frames to /echo come back without it."""
    c = env.conn()
    sid = c.send_headers(request_fields("/echo", "POST", extra=[("content-length", "10")]),
                         end_stream=False)
    c.send(data_frame(sid, b"hello", pad=20) + data_frame(sid, b"world", end_stream=True, pad=0))
    st = expect_ok(c.response(sid))
    if bytes(st.data) != b"helloworld":
        raise Failure("echo: %r" % bytes(st.data))


@case
def headers_on_stream_zero(env):
    """RFC 9113 §6.2: HEADERS on stream 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 0, block(request_fields("/"))))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def headers_invalid_padding(env):
    """RFC 9113 §6.2: a HEADERS pad length not less than the payload is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    encoded = block(request_fields("/"))
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                 bytes([len(encoded) + 10]) + encoded))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def headers_padded_accepted(env):
    """RFC 9113 §6.2: padded HEADERS (with PRIORITY too) are answered."""
    c = env.conn()
    encoded = block(request_fields("/"))
    c.stream(1)
    c.next_id = 3
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, 1,
                 bytes([7]) + priority_payload(0, 256) + encoded + b"\0" * 7))
    expect_ok(c.response(1))


@case
def headers_self_dependency(env):
    """RFC 9113 §5.3.1: a stream cannot depend on itself: HEADERS of stream 1 depending on 1 is an error PROTOCOL_ERROR."""
    c = env.conn()
    sid = c.send_block(block(request_fields("/py/self")), priority=(1, 16))
    return c.expect_stream_error(sid, PROTOCOL_ERROR)


@case
def headers_interrupted_by_other_frame(env):
    """RFC 9113 §4.3, §6.2: a header block must continue with CONTINUATION on the same stream: a PING in between is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    encoded = block(request_fields("/"))
    c.send(frame(HEADERS, END_STREAM, 1, encoded[:5]) + ping_frame() +
           frame(CONTINUATION, END_HEADERS, 1, encoded[5:]))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def headers_continuation_other_stream(env):
    """RFC 9113 §6.10: CONTINUATION on another stream than its HEADERS is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    encoded = block(request_fields("/"))
    c.send(frame(HEADERS, END_STREAM, 1, encoded[:5]) +
           frame(CONTINUATION, END_HEADERS, 3, encoded[5:]))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def headers_continuation_after_end_headers(env):
    """RFC 9113 §6.10: CONTINUATION after a frame that had END_HEADERS is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(HEADERS, END_HEADERS, 1, block(request_fields("/py/upload", "POST"))) +
           frame(CONTINUATION, END_HEADERS, 1, block([("x-more", "1")])))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def priority_on_stream_zero(env):
    """RFC 9113 §6.3: PRIORITY on stream 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(PRIORITY, 0, 0, priority_payload(1, 16)))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def priority_bad_length(env):
    """RFC 9113 §6.3: a PRIORITY frame of other than 5 bytes is an error FRAME_SIZE_ERROR."""
    c = env.conn()
    c.send(frame(PRIORITY, 0, 1, b"\0\0\0\0"))
    return c.expect_stream_error(1, FRAME_SIZE_ERROR)


@case
def priority_on_open_stream_ignored(env):
    """RFC 9113 §6.3, §5.1: PRIORITY is allowed in any stream state: on a half-closed stream it changes nothing, the response arrives."""
    c = env.conn()
    sid = open_slow_stream(c, 300)
    c.send(frame(PRIORITY, 0, sid, priority_payload(0, 200)))
    expect_ok(c.response(sid))


@case
def rst_stream_on_stream_zero(env):
    """RFC 9113 §6.4: RST_STREAM on stream 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(rst_stream_frame(0))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def rst_stream_bad_length(env):
    """RFC 9113 §6.4: an RST_STREAM of other than 4 bytes is a connection error FRAME_SIZE_ERROR."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(frame(RST_STREAM, 0, sid, b"\0\0\0"))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


@case
def rst_stream_cancels_only_its_stream(env):
    """RFC 9113 §6.4, §5.4.2: after the client's RST_STREAM molt sends nothing more on that stream (no RST_STREAM in answer either), and the connection serves other streams."""
    c = env.conn()
    sid = open_slow_stream(c, 800)
    c.send(rst_stream_frame(sid, CANCEL))
    expect_ok(c.get("/"))
    c.wait(lambda: False, 1.2)
    st = c.stream(sid)
    if st.headers is not None or st.data:
        raise Failure("stream %d answered after RST_STREAM: %s" % (sid, c.describe()))
    if st.reset is not None:  # §5.4.2: never an RST_STREAM in answer to one
        raise Failure("molt answered RST_STREAM with RST_STREAM %s" % error_name(st.reset))
    c.expect_alive()
