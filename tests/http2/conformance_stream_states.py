# HTTP/2 conformance (conformance.py): stream states, stream identifiers and concurrency
# (RFC 9113 §5.1).

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, open_slow_stream


# ---- stream states (RFC 9113 §5.1) ----

@case
def state_idle_data(env):
    """RFC 9113 §5.1 (idle): DATA on an idle stream is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(data_frame(1, b"x", end_stream=True))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def state_idle_rst_stream(env):
    """RFC 9113 §5.1 (idle), §6.4: RST_STREAM on an idle stream is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(rst_stream_frame(1))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def state_idle_window_update(env):
    """RFC 9113 §5.1 (idle): WINDOW_UPDATE on an idle stream is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(window_update_frame(1, 100))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def state_idle_continuation(env):
    """RFC 9113 §6.10: CONTINUATION not preceded by HEADERS (on an idle stream) is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(CONTINUATION, END_HEADERS, 1, block(request_fields("/"))))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def state_idle_priority_allowed(env):
    """RFC 9113 §5.1 (idle), §6.3: PRIORITY may name an idle stream; that stream is then opened and answered."""
    c = env.conn()
    c.send(frame(PRIORITY, 0, 1, priority_payload(0, 32)))
    c.expect_alive()
    expect_ok(c.get("/"))


@case
def state_half_closed_remote_data(env):
    """RFC 9113 §5.1 (half-closed remote): DATA after the client's END_STREAM is an error STREAM_CLOSED."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(data_frame(sid, b"late", end_stream=True))
    return c.expect_stream_error(sid, STREAM_CLOSED, valid_request=True)


@case
def state_half_closed_remote_headers(env):
    """RFC 9113 §5.1 (half-closed remote): HEADERS after the client's END_STREAM is an error STREAM_CLOSED."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, block([("x-late", "1")])))
    return c.expect_stream_error(sid, STREAM_CLOSED, valid_request=True)


@case
def state_closed_data(env):
    """RFC 9113 §5.1 (closed): DATA on a stream both sides ended is an error STREAM_CLOSED."""
    c = env.conn()
    st = expect_ok(c.get("/"))
    c.send(data_frame(st.id, b"late", end_stream=True))
    return c.expect_stream_error(st.id, STREAM_CLOSED)


@case
def state_closed_stream_id_reused(env):
    """RFC 9113 §5.1.1: a closed stream's identifier cannot open a new stream: HEADERS on stream 1 again is a connection error (PROTOCOL_ERROR, or STREAM_CLOSED per §5.1)."""
    c = env.conn()
    expect_ok(c.get("/"))
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block(request_fields("/"))))
    return c.expect_connection_error((PROTOCOL_ERROR, STREAM_CLOSED))


@case
def stream_id_even(env):
    """RFC 9113 §5.1.1: streams a client opens have odd identifiers: HEADERS on stream 2 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 2, block(request_fields("/"))))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def stream_id_decreasing(env):
    """RFC 9113 §5.1.1: a new stream's identifier exceeds all the client opened before: HEADERS on stream 5, then on stream 3, is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 5, block(request_fields("/"))))
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, block(request_fields("/"))))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def stream_concurrency_limit(env):
    """RFC 9113 §5.1.2: HEADERS beyond SETTINGS_MAX_CONCURRENT_STREAMS (100 by default) is a stream error PROTOCOL_ERROR or REFUSED_STREAM (or a connection error PROTOCOL_ERROR)."""
    c = env.conn()
    limit = c.server_settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise Failure("molt's SETTINGS have no MAX_CONCURRENT_STREAMS")
    c.expect_alive()  # our ACK of molt's SETTINGS has been read: the limit is in force
    for _ in range(limit):
        open_slow_stream(c, 3000)
    extra = open_slow_stream(c, 3000)
    return c.expect_stream_error(extra, (PROTOCOL_ERROR, REFUSED_STREAM))
