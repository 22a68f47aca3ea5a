#!/usr/bin/env python3
# HTTP/2 attacks on molt (issue 16): each case sends one attack, on its own connections, against
# the single worker of the "guard" frontend (timeouts.client 2s), while a well-behaved client
# keeps asking the same worker for / (over HTTP/2, two clients, and HTTP/1.1 in turn) and must get every answer;
# the Pss of molt's whole process tree may not grow by 32 MiB or more (bounds skipped under the
# sanitizers, as in the C++ tests). Run: tests/http2/run.py 'attack_*'.

import system_python  # noqa: F401  (first: may run this again under Debian's python3)

import socket
import sys
import threading
import time

from harness import case
from h2support import *  # noqa: F401,F403  (frame, HPACK and error-code vocabulary)
from h2support import Failure

MEMORY_BOUND = 32 << 20
MIN_ATTACK_SECONDS = 2.0


class Bystander(threading.Thread):
    """Requests / again and again on fresh connections, in turn with Conn, with python3-h2's
    H2Connection and in HTTP/1.1; every answer must be 200 with the origin's body."""

    def __init__(self, port, body):
        super().__init__(daemon=True)
        self.port = port
        self.body = body
        self.ok = 0
        self.failures = []
        self.stopping = threading.Event()

    def run(self):
        deadline = None
        i = 0
        while True:
            if self.stopping.is_set():
                deadline = deadline or time.monotonic() + 10 * TIME_SCALE
                if self.ok >= 3 or time.monotonic() > deadline:
                    return
            kind = ("h2", "h2-library", "http/1.1")[i % 3]
            try:
                if kind == "h2":
                    c = Conn(self.port, timeout=10 * TIME_SCALE)
                    try:
                        c.handshake()
                        st = c.get("/")
                        status, body = st.status, bytes(st.data)
                    finally:
                        c.close()
                elif kind == "h2-library":
                    status, _, body, _ = h2lib_request(self.port, timeout=10 * TIME_SCALE)
                else:
                    status, body = http1_request(self.port, "/", timeout=10 * TIME_SCALE)
                if status != 200 or body != self.body:
                    self.failures.append("%s: %s %r" % (kind, status, body[:60]))
                else:
                    self.ok += 1
            except Exception as e:  # any failure of a well-behaved client counts
                self.failures.append("%s: %s: %s" % (kind, e.__class__.__name__, e))
            i += 1
            time.sleep(0.05)


class MemoryWatch(threading.Thread):
    """Samples the Pss of molt's process tree every 100 ms."""

    def __init__(self, molt):
        super().__init__(daemon=True)
        self.molt = molt
        self.samples = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.1):
            self.samples.append(self.molt.memory())


def under_attack(env, attack, repeat=True):
    """Runs `attack(port)` (again, while `repeat`, until MIN_ATTACK_SECONDS passed) against the
    guard frontend with a bystander and the memory watch; returns the attack's notes."""
    molt = env.molt("guard")
    port = env.port("guard")
    body = (env.origin_name + "\n").encode()
    for _ in range(3):  # warm up: the first HTTP/2 connections allocate what later ones reuse
        warm = Conn(port)
        try:
            warm.handshake()
            if warm.get("/").status != 200:
                raise Failure("molt does not serve before the attack")
        finally:
            warm.close()
    before = molt.memory()
    bystander = Bystander(env.port("h2"), body)
    watch = MemoryWatch(molt)
    bystander.start()
    watch.start()
    notes = []
    began = time.monotonic()
    try:
        while True:
            notes.append(attack(port))
            if not repeat or time.monotonic() - began >= MIN_ATTACK_SECONDS:
                break
    finally:
        bystander.stopping.set()
        watch.stopping.set()
        bystander.join(30 * TIME_SCALE)
        watch.join(5)
    time.sleep(0.5)
    after = molt.memory()
    peak = max(watch.samples + [after])
    if bystander.failures:
        raise Failure("the well-behaved client failed %d times (%d ok), first: %s" %
                      (len(bystander.failures), bystander.ok, bystander.failures[0]))
    if bystander.ok < 3:
        raise Failure("the well-behaved client got only %d answers" % bystander.ok)
    growth = peak - before
    summary = "%d attack(s): %s; bystander %d ok; Pss %.1f -> peak %.1f MiB" % (
        len(notes), notes[0], bystander.ok, before / 2**20, peak / 2**20)
    if not SANITIZED and growth >= MEMORY_BOUND:
        raise Failure("molt's memory grew by %.1f MiB (%s)" % (growth / 2**20, summary))
    return summary


def blocked_sender(c, chunk, limit_bytes, seconds):
    """Sends `chunk` again and again without reading, until molt closes the connection, the
    byte budget or the time is spent. Returns (bytes sent, closed by molt)."""
    c.sock.settimeout(0.5)
    view = memoryview(chunk)
    sent = pos = 0
    deadline = time.monotonic() + seconds
    while sent < limit_bytes and time.monotonic() < deadline:
        try:
            n = c.sock.send(view[pos:])  # whole frames only: go on where a short send stopped
        except socket.timeout:
            continue
        except OSError:
            return sent, True
        sent += n
        pos = (pos + n) % len(chunk)
    return sent, False


def must_close(c, what, sent, seconds=10):
    """After a flood: molt must close the connection (a GOAWAY before is fine, any code)."""
    if not c.closed and not c.wait_closed(seconds * TIME_SCALE):
        raise Failure("%s: connection still open after %d bytes and %ds: %s" %
                      (what, sent, seconds, c.describe()))
    goaway = c.error_goaway() or (c.goaways[0] if c.goaways else None)
    return "closed after %d KiB%s" % (sent >> 10, ", GOAWAY %s" % error_name(goaway[1])
                                      if goaway else "")


@case
def attack_rapid_reset(env):
    """CVE-2023-44487 (RFC 9113 §6.4, §10.5): streams opened and reset at once, thousands a second: GOAWAY ENHANCE_YOUR_CALM, then the connection closes."""
    def attack(port):
        c = Conn(port)
        try:
            c.handshake()
            sent = 0
            while sent < 20000 and not c.goaways and not c.closed:
                batch = bytearray()
                for _ in range(100):
                    sid = c.new_stream_id()
                    batch += frame(HEADERS, END_STREAM | END_HEADERS, sid,
                                   c.encoder.encode(request_fields("/")))
                    batch += rst_stream_frame(sid, CANCEL)
                c.send(bytes(batch))
                sent += 100
                c.wait(lambda: c.goaways, 0.001)
            if not c.wait(lambda: c.error_goaway(), 10 * TIME_SCALE):
                raise Failure("no GOAWAY after %d reset streams: %s" % (sent, c.describe()))
            code = c.error_goaway()[1]
            if code != ENHANCE_YOUR_CALM:
                raise Failure("GOAWAY %s after %d reset streams, expected ENHANCE_YOUR_CALM" %
                              (error_name(code), sent))
            if not c.wait_closed(10 * TIME_SCALE):
                raise Failure("connection open after GOAWAY ENHANCE_YOUR_CALM")
            return "GOAWAY ENHANCE_YOUR_CALM after %d streams" % sent
        finally:
            c.close()
    return under_attack(env, attack)


@case
def attack_continuation_flood(env):
    """CVE-2024-27316 (RFC 9113 §6.10): a header block that never ends, CONTINUATION after CONTINUATION (16 KiB of fields each, or empty): the connection is closed."""
    variant = [0]

    def attack(port):
        c = Conn(port)
        try:
            c.handshake()
            c.send(frame(HEADERS, END_STREAM, 1, block(request_fields("/py/flood"))))
            if variant[0] % 2 == 0:
                fields = b"".join(literal("x-flood-%d" % i, "f" * 1000) for i in range(15))
                chunk = frame(CONTINUATION, 0, 1, fields)
            else:
                chunk = frame(CONTINUATION, 0, 1, b"") * 1000
            variant[0] += 1
            sent, _ = blocked_sender(c, chunk, 64 << 20, 10 * TIME_SCALE)
            return must_close(c, "CONTINUATION flood", sent)
        finally:
            c.close()
    note = under_attack(env, attack)
    if env.py.seen(lambda r: r["target"] == "/py/flood"):
        raise Failure("the flooding request was forwarded")
    return note


@case
def attack_settings_flood(env):
    """RFC 9113 §6.5, §10.5: SETTINGS frames by the thousand while never reading their ACKs: the connection is closed."""
    def attack(port):
        c = Conn(port)
        try:
            c.handshake()
            chunk = settings_frame({HEADER_TABLE_SIZE: 4096}) * 1000
            sent, _ = blocked_sender(c, chunk, 256 << 20, 15 * TIME_SCALE)
            return must_close(c, "SETTINGS flood", sent)
        finally:
            c.close()
    return under_attack(env, attack, repeat=False)


@case
def attack_ping_flood(env):
    """RFC 9113 §6.7, §10.5: PING frames by the thousand while never reading their ACKs: the connection is closed."""
    def attack(port):
        c = Conn(port)
        try:
            c.handshake()
            chunk = ping_frame(b"floodme!") * 1000
            sent, _ = blocked_sender(c, chunk, 256 << 20, 15 * TIME_SCALE)
            return must_close(c, "PING flood", sent)
        finally:
            c.close()
    return under_attack(env, attack, repeat=False)


@case
def attack_zero_window(env):
    """RFC 9113 §6.9, §10.5: a client that sets its window to 0 and never opens it, on 8 streams of 256 MiB responses: molt buffers little and ends them after timeouts.client (2 s) — RST_STREAM or the connection closed."""
    def attack(port):
        c = Conn(port)
        try:
            c.auto_window = False
            c.handshake({ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 0})
            sids = [c.request(request_fields("/size/268435456")) for _ in range(8)]
            began = time.monotonic()
            done = c.wait(lambda: all(c.stream(s).reset is not None for s in sids) or
                          c.error_goaway() is not None, (2 + 10) * TIME_SCALE)
            took = time.monotonic() - began
            if not done and not c.closed:
                raise Failure("stalled streams still open after %.0f s: %s" % (took, c.describe()))
            if took < 1.5:
                raise Failure("streams ended after %.1f s, before timeouts.client (2 s)" % took)
            if c.violations or any(c.stream(s).data for s in sids):
                raise Failure("DATA into a zero window: %s" % (c.violations or c.describe()))
            return "ended after %.1f s (%s)" % (took, c.describe())
        finally:
            c.close()
    return under_attack(env, attack, repeat=False)


@case
def attack_too_many_streams(env):
    """RFC 9113 §5.1.2, §10.5: 3 x SETTINGS_MAX_CONCURRENT_STREAMS slow requests at once on one connection: at most the limit are served, the others refused (RST_STREAM) or the connection ended."""
    def attack(port):
        c = Conn(port)
        try:
            c.handshake()
            limit = c.server_settings.get(MAX_CONCURRENT_STREAMS)
            if not limit:
                raise Failure("molt's SETTINGS have no MAX_CONCURRENT_STREAMS")
            c.expect_alive()
            batch = bytearray()
            sids = []
            for _ in range(3 * limit):
                sid = c.new_stream_id()
                sids.append(sid)
                c.stream(sid)
                batch += frame(HEADERS, END_STREAM | END_HEADERS, sid,
                               c.encoder.encode(request_fields("/slow?ms=1000")))
            c.send(bytes(batch))
            c.wait(lambda: all(c.stream(s).ended or c.stream(s).reset is not None for s in sids)
                   or c.error_goaway() is not None, 15 * TIME_SCALE)
            served = [s for s in sids if c.stream(s).status == 200]
            refused = [s for s in sids if c.stream(s).reset in (REFUSED_STREAM, PROTOCOL_ERROR)]
            ended = c.error_goaway() is not None or c.closed
            if len(served) > limit:
                raise Failure("%d streams served, over the limit of %d" % (len(served), limit))
            if not ended and len(served) + len(refused) != len(sids):
                raise Failure("%d served, %d refused of %d: %s" %
                              (len(served), len(refused), len(sids), c.describe()))
            return "%d served, %d refused%s" % (len(served), len(refused),
                                                 ", connection ended" if ended else "")
        finally:
            c.close()
    return under_attack(env, attack)


@case
def attack_oversized_header_lists(env):
    """RFC 9113 §6.5.2, §10.5.1: header lists of 160 KB each (a 4000-byte field referenced again and again from the HPACK table), stream after stream: each refused (431 or RST_STREAM, or the connection ended), none forwarded."""
    def attack(port):
        streams = 0
        refused = {}
        c = Conn(port)
        try:
            c.handshake()
            for _ in range(50):
                value = "h" * 4000
                encoded = (block(request_fields("/py/huge")) + literal_indexed("x-big", value) +
                           indexed(62) * 40)
                sid = c.send_block(encoded)
                streams += 1
                st = c.stream(sid)
                c.wait(lambda: st.reset is not None or st.headers is not None or c.closed or
                       c.error_goaway() is not None)
                if st.headers is not None:
                    if st.status != 431:
                        raise Failure("a 160 KB header list was answered %s" % st.status)
                    how = "431"
                elif st.reset is not None:
                    how = "RST_STREAM " + error_name(st.reset)
                elif c.closed or c.error_goaway() is not None:
                    how = "connection ended"
                else:
                    raise Failure("no answer to a 160 KB header list: " + c.describe())
                refused[how] = refused.get(how, 0) + 1
                if how == "connection ended":
                    break
            return "%d streams: %s" % (streams, refused)
        finally:
            c.close()
    note = under_attack(env, attack)
    if env.py.seen(lambda r: r["target"] == "/py/huge"):
        raise Failure("an oversized header list was forwarded")
    return note


if __name__ == "__main__":
    import harness
    sys.exit(harness.main(modules=["__main__"]))
