# What the conformance cases (conformance_*.py) share: expecting a served stream, a malformed
# request that must be reset and never forwarded, reading raw bytes until molt closes, and a
# stream kept open by the test origin's /slow.

import time

from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure


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
