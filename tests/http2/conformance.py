#!/usr/bin/env python3
# HTTP/2 conformance of molt's client side, frame by frame (issue 16), in the areas h2spec covers:
# the connection preface, frame sizes, each frame type's rules, stream states, flow control, HPACK,
# SETTINGS, and the HTTP semantics of RFC 9113 §8 (a malformed request is never forwarded); then
# requests end to end through molt to the test origins. Each case's docstring cites the section
# it checks. Run: tests/http2/run.py [CASE-GLOB...] (or this file directly).

import system_python  # noqa: F401  (first: may run this again under Debian's python3)

import os
import signal
import sys
import time

from hyperframe import frame as hf

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure


# ---- helpers ----

def expect_ok(st, status=200):
    if st.reset is not None:
        raise Failure("stream %d reset with %s" % (st.id, error_name(st.reset)))
    if st.status != status:
        raise Failure("stream %d: :status %s, expected %d" % (st.id, st.status, status))
    return st


def origin_body(env):
    return (env.origin_name + "\n").encode()


def sync_py_origin(env):
    """A request through molt to the HTTP/1.1 origin of this process, so that whatever molt
    forwarded before has arrived there."""
    c = env.conn()
    expect_ok(c.get("/py/sync"))


def malformed(env, name, fields, codes=(PROTOCOL_ERROR,), data=None, trailers=None):
    """Sends a request built from `fields` exactly as given (plus an x-case marker), expects a
    stream error (RFC 9113 §8.1.1: a malformed request is a stream error PROTOCOL_ERROR; a 4xx
    answer before the reset is allowed) and checks that the origin never saw the marker."""
    c = env.conn()
    marked = list(fields) + [("x-case", name)]
    sid = c.send_block(block(marked), end_stream=data is None and trailers is None)
    if data is not None:
        c.send(data_frame(sid, data, end_stream=trailers is None))
    if trailers is not None:
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, block(trailers)))
    note = c.expect_stream_error(sid, codes, allow_http_error=True)
    sync_py_origin(env)
    if env.py.seen(lambda r: ("x-case", name) in r["fields"]):
        raise Failure("the malformed request was forwarded to the origin (%s)" % note)
    return note


def py_fields(path="/py/m", method="GET", extra=()):
    return request_fields(path, method=method, extra=extra)


def raw_until_closed(c, timeout=None):
    """Bytes read until molt closes the connection; (bytes, closed)."""
    deadline = time.monotonic() + (c.timeout if timeout is None else timeout)
    while not c.closed and c._fill(deadline):
        pass
    return bytes(c.buf), c.closed


SLOW_BODY = b"slow\n"  # what the test origin's /slow answers


def open_slow_stream(c, ms=1500):
    """A GET whose response comes `ms` later: the stream stays half-closed (remote) meanwhile."""
    return c.request(request_fields("/slow?ms=%d" % ms))


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


# ---- HPACK (RFC 9113 §4.3, RFC 7541) ----

def hpack_error(env, encoded):
    c = env.conn()
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, encoded))
    return c.expect_connection_error(COMPRESSION_ERROR)


@case
def hpack_index_zero(env):
    """RFC 7541 §6.1 (RFC 9113 §4.3): index 0 is a decoding error: connection error COMPRESSION_ERROR."""
    return hpack_error(env, indexed(0) + block(request_fields("/")))


@case
def hpack_index_out_of_range(env):
    """RFC 7541 §2.3.3: an index past the static and (empty) dynamic table is a COMPRESSION_ERROR."""
    return hpack_error(env, block(request_fields("/")) + indexed(70))


@case
def hpack_table_size_update_too_large(env):
    """RFC 7541 §6.3, §4.2: a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE is a COMPRESSION_ERROR."""
    c = env.conn()
    limit = c.server_settings.get(HEADER_TABLE_SIZE, 4096)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                 table_size_update(limit + 1) + block(request_fields("/"))))
    return c.expect_connection_error(COMPRESSION_ERROR)


@case
def hpack_table_size_update_after_field(env):
    """RFC 7541 §4.2: a dynamic table size update must start the header block; after a field it is a COMPRESSION_ERROR."""
    fields = request_fields("/")
    return hpack_error(env, block(fields[:1]) + table_size_update(0) + block(fields[1:]))


@case
def hpack_huffman_eos(env):
    """RFC 7541 §5.2: a Huffman string containing the EOS symbol is a decoding error: COMPRESSION_ERROR."""
    bad = b"\x00" + hpack_int(4, 7, 0x80) + b"\xff\xff\xff\xff" + hpack_string("v")
    return hpack_error(env, block(request_fields("/")) + bad)


@case
def hpack_huffman_bad_padding(env):
    """RFC 7541 §5.2: Huffman padding that is not the most significant bits of EOS (all ones) is a decoding error: COMPRESSION_ERROR."""
    # 0x00 decodes '0' (00000), then three bits of zero padding.
    bad = b"\x00" + hpack_string("x-pad") + hpack_int(1, 7, 0x80) + b"\x00"
    return hpack_error(env, block(request_fields("/")) + bad)


@case
def hpack_integer_overflow(env):
    """RFC 7541 §5.1: an integer far beyond any table (ten continuation bytes) is a decoding error: COMPRESSION_ERROR."""
    return hpack_error(env, block(request_fields("/")) + b"\xff" + b"\xff" * 10 + b"\x01")


@case
def hpack_truncated_block(env):
    """RFC 7541 §3.2, RFC 9113 §4.3: a header block that ends inside a field (a 10-byte string with 3 bytes) is a COMPRESSION_ERROR."""
    return hpack_error(env, block(request_fields("/")) + b"\x00\x05x-cut\x0aabc")


@case
def hpack_table_size_zero_accepted(env):
    """RFC 7541 §4.2, §6.3: a dynamic table size update to 0 at the start of a block is valid: the request is answered."""
    c = env.conn()
    sid = c.send_block(table_size_update(0) + block(request_fields("/")))
    expect_ok(c.response(sid))


@case
def hpack_dynamic_table_across_requests(env):
    """RFC 7541 §2.3.2, §4: fields indexed by one request are referenced by the next ones on the connection (three requests, no Huffman)."""
    c = env.conn()
    for i in range(3):
        sid = c.send_headers(request_fields("/", extra=[("x-repeat", "same value")]),
                             huffman=False)
        expect_ok(c.response(sid))


@case
def hpack_huffman_accepted(env):
    """RFC 7541 §5.2: Huffman-coded names and values decode: a Huffman-coded request reaches the origin intact."""
    c = env.conn()
    sid = c.send_headers(request_fields("/headers", extra=[("x-huffman", "Huffman coded value 123")]),
                         huffman=True)
    st = expect_ok(c.response(sid))
    if b"huffman coded value 123" not in bytes(st.data).lower():
        raise Failure("the origin saw: %r" % bytes(st.data)[:300])


@case
def hpack_never_indexed_accepted(env):
    """RFC 7541 §6.2.3: a literal never-indexed field is accepted and passed on."""
    c = env.conn()
    secret = b"\x10" + hpack_string("x-secret") + hpack_string("s3cret")
    sid = c.send_block(block(request_fields("/headers")) + secret)
    st = expect_ok(c.response(sid))
    if b"s3cret" not in bytes(st.data):
        raise Failure("the origin saw: %r" % bytes(st.data)[:300])


@case
def hpack_block_split_in_continuation(env):
    """RFC 9113 §4.3, §6.10: a header block split into HEADERS and two CONTINUATION frames (cut inside fields) decodes as one."""
    c = env.conn()
    encoded = block(request_fields("/", extra=[("x-split", "across frames")]))
    a, b = len(encoded) // 3, 2 * len(encoded) // 3
    c.stream(1)
    c.next_id = 3
    c.send(frame(HEADERS, END_STREAM, 1, encoded[:a]) + frame(CONTINUATION, 0, 1, encoded[a:b]) +
           frame(CONTINUATION, END_HEADERS, 1, encoded[b:]))
    expect_ok(c.response(1))


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


if __name__ == "__main__":
    import harness
    sys.exit(harness.main(modules=["__main__"]))
