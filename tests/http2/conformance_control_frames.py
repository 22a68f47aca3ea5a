# HTTP/2 conformance (conformance.py): SETTINGS (RFC 9113 §6.5), then PUSH_PROMISE, PING and
# GOAWAY (§6.6-6.8, §8.4).

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, SLOW_BODY, open_slow_stream


# ---- SETTINGS (RFC 9113 §6.5) ----

@case
def settings_values_valid(env):
    """RFC 9113 §6.5.2: molt's SETTINGS hold valid values: ENABLE_PUSH absent or 0, MAX_FRAME_SIZE in 2^14..2^24-1, INITIAL_WINDOW_SIZE at most 2^31-1, MAX_CONCURRENT_STREAMS 100 (http2.max_concurrent_streams' default)."""
    c = env.conn()
    s = c.server_settings
    problems = []
    if s.get(ENABLE_PUSH, 0) != 0:
        problems.append("ENABLE_PUSH=%d" % s[ENABLE_PUSH])
    if not 16384 <= s.get(MAX_FRAME_SIZE, 16384) <= 2**24 - 1:
        problems.append("MAX_FRAME_SIZE=%d" % s[MAX_FRAME_SIZE])
    if s.get(INITIAL_WINDOW_SIZE, 65535) > MAX_WINDOW:
        problems.append("INITIAL_WINDOW_SIZE=%d" % s[INITIAL_WINDOW_SIZE])
    if s.get(MAX_CONCURRENT_STREAMS) != 100:
        problems.append("MAX_CONCURRENT_STREAMS=%s, expected 100" % s.get(MAX_CONCURRENT_STREAMS))
    if s.get(MAX_HEADER_LIST_SIZE, 65536) != 65536:
        problems.append("MAX_HEADER_LIST_SIZE=%d, expected 65536" % s[MAX_HEADER_LIST_SIZE])
    if problems:
        raise Failure(", ".join(problems))


@case
def settings_ack_with_payload(env):
    """RFC 9113 §6.5: a SETTINGS ACK with a payload is a connection error FRAME_SIZE_ERROR."""
    c = env.conn()
    c.send(frame(SETTINGS, ACK, 0, struct_pair(INITIAL_WINDOW_SIZE, 100)))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


def struct_pair(key, value):
    return key.to_bytes(2, "big") + value.to_bytes(4, "big")


@case
def settings_on_stream(env):
    """RFC 9113 §6.5: SETTINGS on a stream other than 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(settings_frame({INITIAL_WINDOW_SIZE: 100}, stream_id=1))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def settings_bad_length(env):
    """RFC 9113 §6.5: a SETTINGS length not a multiple of 6 is a connection error FRAME_SIZE_ERROR."""
    c = env.conn()
    c.send(frame(SETTINGS, 0, 0, struct_pair(INITIAL_WINDOW_SIZE, 100)[:5]))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


@case
def settings_enable_push_invalid(env):
    """RFC 9113 §6.5.2: SETTINGS_ENABLE_PUSH other than 0 or 1 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(settings_frame({ENABLE_PUSH: 2}))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def settings_initial_window_too_large(env):
    """RFC 9113 §6.5.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error FLOW_CONTROL_ERROR."""
    c = env.conn()
    c.send(settings_frame({INITIAL_WINDOW_SIZE: 2**31}))
    return c.expect_connection_error(FLOW_CONTROL_ERROR)


@case
def settings_max_frame_size_too_small(env):
    """RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE below 2^14 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(settings_frame({MAX_FRAME_SIZE: 16383}))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def settings_max_frame_size_too_large(env):
    """RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE above 2^24-1 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(settings_frame({MAX_FRAME_SIZE: 2**24}))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def settings_unknown_identifier_ignored(env):
    """RFC 9113 §6.5.2: an unknown setting is ignored: the SETTINGS is acknowledged and the connection serves."""
    c = env.conn()
    acks = c.settings_acks
    c.send(settings_frame([(0xFF, 1), (0x4242, 7)]))
    if not c.wait(lambda: c.settings_acks > acks):
        raise Failure("no SETTINGS ACK: " + c.describe())
    expect_ok(c.get("/"))


@case
def settings_initial_window_applies(env):
    """RFC 9113 §6.5.2, §6.9.1: with SETTINGS_INITIAL_WINDOW_SIZE 1 the first DATA frame carries 1 byte, nothing more until WINDOW_UPDATE."""
    c = env.conn(settings={ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 1})
    c.auto_window = False
    sid = c.request(request_fields("/size/100"))
    st = c.stream(sid)
    if not c.wait(lambda: len(st.data) > 0 or st.reset is not None):
        raise Failure("no DATA: " + c.describe())
    c.wait(lambda: False, 0.3)
    if st.data_frames[0] != 1 or len(st.data) != 1 or c.violations:
        raise Failure("DATA frames %s; %s" % (st.data_frames, c.violations))
    c.grant(sid, 99)
    c.grant(0, 99)
    c.response(sid)
    if bytes(st.data) != size_body(0, 100) or c.violations:
        raise Failure("body %r; %s" % (bytes(st.data)[:40], c.violations))


@case
def settings_window_change_overflow(env):
    """RFC 9113 §6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes an open stream's window past 2^31-1 is a FLOW_CONTROL_ERROR (the RFC asks a connection error; an RST_STREAM FLOW_CONTROL_ERROR of that stream, what nghttp2 does, is accepted)."""
    c = env.conn(settings={ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 0})
    c.auto_window = False
    sid = open_slow_stream(c)
    # From 0 to the maximum, then one more, in one write: no DATA can slip in between.
    c.send(window_update_frame(sid, MAX_WINDOW) + settings_frame({INITIAL_WINDOW_SIZE: 1}))
    return c.expect_stream_error(sid, FLOW_CONTROL_ERROR, valid_request=True)


@case
def settings_window_negative(env):
    """RFC 9113 §6.9.2: lowering SETTINGS_INITIAL_WINDOW_SIZE can make a stream's window negative; molt then sends only once WINDOW_UPDATE made it positive, and no more than it allows."""
    c = env.conn(settings={ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 100})
    c.auto_window = False
    sid = c.request(request_fields("/size/1000"))
    st = c.stream(sid)
    if not c.wait(lambda: len(st.data) >= 100):
        raise Failure("not the first 100 bytes: " + c.describe())
    acks = c.settings_acks
    c.send_settings({INITIAL_WINDOW_SIZE: 50})
    if not c.wait(lambda: c.settings_acks > acks):
        raise Failure("no SETTINGS ACK")
    c.grant(sid, 60)  # -50 + 60: room for 10 bytes
    c.wait(lambda: len(st.data) >= 110, 2)
    c.wait(lambda: False, 0.3)
    if len(st.data) != 110 or c.violations:
        raise Failure("%d bytes after a window of 10; %s" % (len(st.data), c.violations))
    c.grant(sid, 890)
    c.grant(0, 1000)
    c.response(sid)
    if bytes(st.data) != size_body(0, 1000):
        raise Failure("body differs (%d bytes)" % len(st.data))


# ---- PUSH_PROMISE, PING, GOAWAY (RFC 9113 §6.6-6.8, §8.4) ----

@case
def push_promise_from_client(env):
    """RFC 9113 §8.4, §6.6: a client cannot push: PUSH_PROMISE received by molt is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    sid = open_slow_stream(c)
    c.send(frame(PUSH_PROMISE, END_HEADERS, sid, (2).to_bytes(4, "big") +
                 block(request_fields("/pushed"))))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def ping_answered(env):
    """RFC 9113 §6.7: a PING is answered by a PING ACK with the same 8 bytes."""
    c = env.conn()
    if not c.ping(b"\x00\x01\x02\x03\xfc\xfd\xfe\xff"):
        raise Failure("no PING ACK: " + c.describe())


@case
def ping_ack_not_answered(env):
    """RFC 9113 §6.7: a PING ACK is not answered."""
    c = env.conn()
    c.send(ping_frame(b"unasked!", ack=True))
    if not c.ping(b"asked!!!"):
        raise Failure("no PING ACK: " + c.describe())
    if b"unasked!" in c.ping_acks:
        raise Failure("molt answered a PING ACK")


@case
def ping_on_stream(env):
    """RFC 9113 §6.7: PING on a stream other than 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(ping_frame(stream_id=1))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def ping_bad_length(env):
    """RFC 9113 §6.7: a PING of other than 8 bytes is a connection error FRAME_SIZE_ERROR."""
    c = env.conn()
    c.send(frame(PING, 0, 0, b"1234567"))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


@case
def goaway_on_stream(env):
    """RFC 9113 §6.8: GOAWAY on a stream other than 0 is a connection error PROTOCOL_ERROR."""
    c = env.conn()
    c.send(goaway_frame(stream_id=1))
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def goaway_from_client_streams_complete(env):
    """RFC 9113 §6.8: the client's GOAWAY concerns streams molt would open; the client's own stream in flight is still answered."""
    c = env.conn()
    sid = open_slow_stream(c, 300)
    c.send(goaway_frame(0, NO_ERROR))
    st = expect_ok(c.response(sid))
    if bytes(st.data) != SLOW_BODY:
        raise Failure("body %r" % bytes(st.data))
