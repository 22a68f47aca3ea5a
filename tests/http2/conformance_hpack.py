# HTTP/2 conformance (conformance.py): HPACK (RFC 9113 §4.3, RFC 7541), header blocks that
# molt must refuse as a COMPRESSION_ERROR and those it must decode.

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure
from conformance_helpers import expect_ok


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
