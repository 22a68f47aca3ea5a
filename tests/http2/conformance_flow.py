# HTTP/2 conformance (conformance.py): WINDOW_UPDATE and flow control, both ways (RFC 9113
# §6.9).

import time

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, open_slow_stream


# ---- WINDOW_UPDATE and flow control (RFC 9113 §6.9) ----

@case
def window_update_zero_connection(env):
    """RFC 9113 §6.9: a connection WINDOW_UPDATE of 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(window_update_frame(0, 0))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def window_update_zero_stream(env):
    """RFC 9113 §6.9: a stream WINDOW_UPDATE of 0 is a stream error PROTOCOL_ERROR."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(window_update_frame(sid, 0))
    return c.expect_stream_error(sid, PROTOCOL_ERROR, valid_request=True)


@case
def window_update_bad_length(env):
    """RFC 9113 §6.9: a WINDOW_UPDATE of other than 4 bytes is a connection error FRAME_SIZE_ERROR."""
    c = env.conn()
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


@case
def window_update_connection_overflow(env):
    """RFC 9113 §6.9.1: a connection window above 2^31-1 is a connection error FLOW_CONTROL_ERROR."""
    c = env.conn()
    c.send(window_update_frame(0, MAX_WINDOW))
    return c.expect_connection_error(FLOW_CONTROL_ERROR)


@case
def window_update_stream_overflow(env):
    """RFC 9113 §6.9.1: a stream window above 2^31-1 is a stream error FLOW_CONTROL_ERROR."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(window_update_frame(sid, MAX_WINDOW))
    return c.expect_stream_error(sid, FLOW_CONTROL_ERROR, valid_request=True)


@case
def flow_connection_window_respected(env):
    """RFC 9113 §6.9.1: molt sends no more than the connection window (65535) however large the stream window, then the rest after WINDOW_UPDATE."""
    c = env.conn(settings={ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: MAX_WINDOW})
    c.auto_window = False
    sid = c.request(request_fields("/size/200000"))
    st = c.stream(sid)
    c.wait(lambda: len(st.data) >= 65535)
    c.wait(lambda: False, 0.3)
    if len(st.data) != 65535 or c.violations:
        raise Failure("%d bytes within a connection window of 65535; %s" %
                      (len(st.data), c.violations))
    c.grant(0, 200000)
    c.response(sid)
    if bytes(st.data) != size_body(0, 200000) or c.violations:
        raise Failure("body differs (%d bytes); %s" % (len(st.data), c.violations))


@case
def flow_large_response_small_window(env):
    """RFC 9113 §6.9: a 4 MiB response through a 16 KiB stream window the client opens a little at a time arrives whole, in frames within the windows."""
    size = 4 << 20
    c = env.conn(settings={ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 16384})
    c.auto_window = False
    sid = c.request(request_fields("/size/%d" % size))
    st = c.stream(sid)
    credit = 0
    deadline = time.monotonic() + 30 * TIME_SCALE
    while not (st.ended or st.reset is not None or c.closed):
        before = len(st.data)
        if c.read_frame(max(0.1, deadline - time.monotonic())) is None and \
                time.monotonic() > deadline:
            raise Failure("stalled at %d bytes: %s" % (len(st.data), c.describe()))
        credit += len(st.data) - before
        if credit >= 4096:
            c.grant(0, credit)
            c.grant(sid, credit)
            credit = 0
    expect_ok(st)
    if c.violations:
        raise Failure(c.violations[0])
    if len(st.data) != size or bytes(st.data[-26:]) != size_body(size - 26, 26) or \
            bytes(st.data[:4096]) != size_body(0, 4096):
        raise Failure("%d bytes received" % len(st.data))


@case
def flow_upload_many_data_frames(env):
    """RFC 9113 §6.1, §6.9: a 300 KB body in 300 DATA frames, beyond molt's initial windows, is echoed whole (molt returns window credit as it forwards)."""
    c = env.conn()
    body = b"".join(b"%07d|" % i * 125 for i in range(300))
    sid = c.send_headers(request_fields("/echo", "POST"), end_stream=False)
    c.send_data(sid, body, frame_size=1000)
    st = expect_ok(c.response(sid, 20 * TIME_SCALE))
    if bytes(st.data) != body:
        raise Failure("echo of %d bytes differs (%d back)" % (len(body), len(st.data)))
