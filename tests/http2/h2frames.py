# HTTP/2 test support, the vocabulary: frame types, flags, error codes and settings, the time
# bounds, Failure; frames built byte by byte and HPACK blocks by hand, so that a case can send what
# no library would (bad lengths, reserved bits, undecodable header blocks).

import os
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 §7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM", 0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM", 0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

# Settings (RFC 9113 §6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

MAX_WINDOW = 2**31 - 1

# The sanitizer build is slower: every bound is stretched (like the C++ tests' tripled timeouts).
SANITIZED = os.environ.get("MOLT_SANITIZED") == "1"
TIME_SCALE = 3 if SANITIZED else 1
TIMEOUT = 5.0 * TIME_SCALE


class Failure(AssertionError):
    """A case's expectation that molt did not meet; the message says what happened instead."""


def error_name(code):
    return ERROR_NAMES.get(code, hex(code))


def error_names(codes):
    return " or ".join(error_name(c) for c in codes)


def as_codes(codes):
    return (codes,) if isinstance(codes, int) else tuple(codes)


def to_bytes(text):
    return text if isinstance(text, bytes) else text.encode("utf-8")


# ---- frames, byte by byte ----

def frame(ftype, flags, stream_id, payload=b"", length=None):
    """One frame; `length` overrides the length field (to lie about it), `stream_id` may carry
    the reserved bit."""
    n = len(payload) if length is None else length
    return (struct.pack(">I", n)[1:] + bytes([ftype, flags]) +
            struct.pack(">I", stream_id & 0xFFFFFFFF) + payload)


def settings_frame(pairs=(), ack=False, stream_id=0):
    items = pairs.items() if isinstance(pairs, dict) else pairs
    payload = b"".join(struct.pack(">HI", k, v) for k, v in items)
    return frame(SETTINGS, ACK if ack else 0, stream_id, payload)


def ping_frame(opaque=b"molt-h2!", ack=False, stream_id=0):
    return frame(PING, ACK if ack else 0, stream_id, opaque)


def window_update_frame(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream_frame(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def goaway_frame(last_stream_id=0, code=NO_ERROR, debug=b"", stream_id=0):
    return frame(GOAWAY, 0, stream_id, struct.pack(">II", last_stream_id, code) + debug)


def priority_payload(depends_on=0, weight=16, exclusive=False):
    return struct.pack(">IB", depends_on | (0x80000000 if exclusive else 0), weight - 1)


def data_frame(stream_id, data=b"", end_stream=False, pad=None):
    flags = END_STREAM if end_stream else 0
    if pad is None:
        return frame(DATA, flags, stream_id, data)
    return frame(DATA, flags | PADDED, stream_id, bytes([pad]) + data + b"\0" * pad)


# ---- HPACK by hand (RFC 7541) ----

def hpack_int(value, prefix_bits, high=0):
    """An integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([high | value])
    out = [high | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text):
    data = to_bytes(text)
    return hpack_int(len(data), 7) + data


def literal(name, value):
    """Literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2): decodes to exactly
    these bytes and leaves the dynamic table alone."""
    return b"\x00" + hpack_string(name) + hpack_string(value)


def literal_indexed(name, value):
    """Literal field with incremental indexing, new name (RFC 7541 §6.2.1)."""
    return b"\x40" + hpack_string(name) + hpack_string(value)


def indexed(index):
    """Indexed field (RFC 7541 §6.1)."""
    return hpack_int(index, 7, 0x80)


def table_size_update(size):
    """Dynamic table size update (RFC 7541 §6.3)."""
    return hpack_int(size, 5, 0x20)


def block(fields):
    """A header block of literal fields, in order, exactly as given (no validation)."""
    return b"".join(literal(n, v) for n, v in fields)


def request_fields(path="/", method="GET", authority="h2.test", scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":authority", authority),
            (":path", path), *extra]
