# HTTP/2 conformance (conformance.py): the connection preface (RFC 9113 §3.4) and the frame
# format and sizes (§4).

from hyperframe import frame as hf

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok, origin_body, raw_until_closed


# ---- connection preface (RFC 9113 §3.4) ----

@case
def preface_server_settings_first(env):
    """RFC 9113 §3.4: the server's connection preface is a SETTINGS frame, the first frame molt sends."""
    c = env.conn(handshake=False)
    c.send(PREFACE + settings_frame({ENABLE_PUSH: 0}))
    f = c.read_frame()
    if f is None:
        raise Failure("no frame: " + c.describe())
    if not isinstance(f, hf.SettingsFrame) or "ACK" in f.flags:
        raise Failure("first frame was %s" % c.log[0])


@case
def preface_settings_acknowledged(env):
    """RFC 9113 §6.5.3: molt acknowledges the client's SETTINGS with a SETTINGS ACK."""
    c = env.conn(handshake=False)
    c.send(PREFACE + settings_frame({ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 70000,
                                     MAX_HEADER_LIST_SIZE: 1 << 20}))
    if not c.wait(lambda: c.settings_acks > 0):
        raise Failure("no SETTINGS ACK: " + c.describe())


@case
def preface_invalid_closes(env):
    """RFC 9113 §3.4: an invalid client preface is a connection error: molt closes the connection (after a GOAWAY or an HTTP/1.1 error, whichever protocol it took it for)."""
    c = env.conn(handshake=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings_frame())
    data, closed = raw_until_closed(c)
    if not closed:
        raise Failure("connection still open after an invalid preface; got %r" % data[:120])


@case
def preface_first_frame_not_settings(env):
    """RFC 9113 §3.4: the client preface ends with a SETTINGS frame; a PING in its place is a connection error PROTOCOL_ERROR."""
    c = env.conn(handshake=False)
    c.send(PREFACE + ping_frame())
    return c.expect_connection_error(PROTOCOL_ERROR)


@case
def preface_http1_still_served(env):
    """RFC 9113 §3.3: prior knowledge is the client's choice; on the same plaintext bind a connection without the preface speaks HTTP/1.1."""
    status, body = http1_request(env.port("h2"))
    if status != 200 or body != origin_body(env):
        raise Failure("HTTP/1.1 answer %d %r" % (status, body[:80]))


# ---- frame format and size (RFC 9113 §4) ----

@case
def frame_unknown_type_ignored(env):
    """RFC 9113 §4.1, §5.5: frames of unknown types are ignored (types 0x16 and 0xfa on stream 0), the connection goes on."""
    c = env.conn()
    c.send(frame(0x16, 0xFF, 0, b"ignore me") + frame(0xFA, 0, 0, b""))
    c.expect_alive()
    expect_ok(c.get("/"))


@case
def frame_unknown_flags_ignored(env):
    """RFC 9113 §4.1: flags a frame type does not define are ignored: a PING with flags 0xfe is answered with a PING ACK carrying its payload."""
    c = env.conn()
    c.send(frame(PING, 0xFE, 0, b"flags!!!"))
    if not c.wait(lambda: b"flags!!!" in c.ping_acks):
        raise Failure("no PING ACK: " + c.describe())


@case
def frame_reserved_bit_ignored(env):
    """RFC 9113 §4.1: the reserved bit of the stream identifier is ignored on receipt: HEADERS with it set open stream 1."""
    c = env.conn()
    encoded = c.encoder.encode(request_fields("/"))
    c.stream(1)
    c.next_id = 3
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 0x80000001, encoded))
    expect_ok(c.response(1))


@case
def frame_data_of_max_size_accepted(env):
    """RFC 9113 §4.2: a DATA frame of exactly SETTINGS_MAX_FRAME_SIZE (16384 bytes, the initial value) is accepted: /echo returns it."""
    c = env.conn()
    body = bytes(range(256)) * 64
    sid = c.send_headers(request_fields("/echo", "POST", extra=[("content-length", "16384")]),
                         end_stream=False)
    if min(c.send_window, c.stream(sid).send_window) < 16384:
        raise Failure("molt's windows are under 16384 bytes")
    c.send(data_frame(sid, body, end_stream=True))
    st = expect_ok(c.response(sid))
    if bytes(st.data) != body:
        raise Failure("echo differs: %d bytes back" % len(st.data))


@case
def frame_data_over_max_size(env):
    """RFC 9113 §4.2: a DATA frame over SETTINGS_MAX_FRAME_SIZE (16385 bytes) is a FRAME_SIZE_ERROR."""
    c = env.conn()
    sid = c.send_headers(request_fields("/py/upload", "POST"), end_stream=False)
    c.send(data_frame(sid, b"x" * 16385, end_stream=True))
    return c.expect_stream_error(sid, FRAME_SIZE_ERROR)


@case
def frame_headers_over_max_size(env):
    """RFC 9113 §4.2: a HEADERS frame over SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR (a header block changes connection state)."""
    c = env.conn()
    encoded = block(request_fields("/", extra=[("x-pad", "p" * 16400)]))
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, encoded))
    return c.expect_connection_error(FRAME_SIZE_ERROR)


@case
def frame_sizes_from_molt_within_limit(env):
    """RFC 9113 §4.2: molt sends no frame over the client's SETTINGS_MAX_FRAME_SIZE (16384 by default) — a 1 MiB response."""
    c = env.conn()
    st = expect_ok(c.get("/size/1048576"))
    if len(st.data) != 1048576 or max(st.data_frames) > 16384:
        raise Failure("%d bytes, largest DATA %d" % (len(st.data), max(st.data_frames)))
