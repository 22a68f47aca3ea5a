#!/usr/bin/python3
"""bench/connection-memory's idle-connection client (standard library only). Opens COUNT client
connections to 127.0.0.1:PORT one after another, each of one KIND, and keeps them all open, idle:
  keepalive  HTTP/1.1, one GET of PATH answered, then idle (keep-alive);
  tls        the same over TLS (ALPN http/1.1 only, certificate not checked);
  websocket  GET /ws with Upgrade: websocket, the 101, one masked text frame sent and its echo
             read, then idle;
  wss        the same over TLS.
Before: 10 connections of the kind opened and closed (warm-up). Prints one line of key=value
pairs: the PSS (kB) of the proxy's process tree (root PID) before the first connection and SETTLE
seconds after the last, how many connections were opened, how many still answer (one more GET, or
one more echoed frame) after the measurement, how many failed or were not tried (after 20
failures in a row the rest is given up), the seconds the opening took and the last error.
Usage: connection_memory.py PID PORT keepalive|websocket|tls|wss COUNT PATH SETTLE"""
import base64
import os
import resource
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import pss_kb  # noqa: E402

PID, PORT, KIND, COUNT, PATH, SETTLE = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                        int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
TIMEOUT = 5
HOST = "bench.example.com"
GIVE_UP = 20  # failures in a row after which the proxy is taken to hold no more


class Conn:
    """One client connection that has had its first exchange (GET answered, or upgrade + echo)."""

    def __init__(self, context):
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
        try:
            if context:
                sock = context.wrap_socket(sock, server_hostname=HOST)
                if sock.selected_alpn_protocol() not in (None, "http/1.1"):
                    raise OSError(f"ALPN gave {sock.selected_alpn_protocol()!r}")
            self.sock, self.buf = sock, b""
            if KIND in ("websocket", "wss"):
                self.upgrade()
                self.echo()
            else:
                self.get()
        except BaseException:
            sock.close()
            raise

    def recv_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise OSError("closed by the proxy")
        self.buf += data

    def take(self, n):
        while len(self.buf) < n:
            self.recv_more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.recv_more()
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out

    def head(self):
        """Reads a response head; returns (status, {lower-case name: value})."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise OSError("response head too long")
            self.recv_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise OSError(f"not an HTTP/1 answer: {lines[0][:40]!r}")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return parts[1], fields

    def get(self):
        self.sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        status, fields = self.head()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while True:
                size = int(self.line().split(b";")[0], 16)
                self.take(size + 2)  # the chunk and its CRLF (the last: the empty trailer's)
                if size == 0:
                    break
        else:
            self.take(int(fields.get("content-length", "0")))
        if status != "200":
            raise OSError(f"status {status}")
        if fields.get("connection", "").lower() == "close":
            raise OSError("answered with Connection: close")

    def upgrade(self):
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        status, _ = self.head()
        if status != "101":
            raise OSError(f"upgrade refused: status {status}")

    def echo(self):
        payload = b"idle?"
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        b0, b1 = self.take(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self.take(2), "big")
        elif length == 127:
            length = int.from_bytes(self.take(8), "big")
        if b1 & 0x80:
            raise OSError("masked frame from the server")
        data = self.take(length)
        if b0 != 0x81 or data != payload:
            raise OSError(f"bad echo: opcode {b0:#x}, {data[:16]!r}")

    def alive(self):
        try:
            if KIND in ("websocket", "wss"):
                self.echo()
            else:
                self.get()
            return True
        except (OSError, ValueError):
            return False


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = None
    if KIND in ("tls", "wss"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
    # Warm-up: a few connections opened and closed, so that "before" is a proxy that has served.
    for _ in range(10):
        try:
            Conn(context).sock.close()
        except (OSError, ValueError):
            pass
    time.sleep(0.5)
    before = pss_kb(PID)
    conns, failed, in_a_row, error = [], 0, 0, ""
    started = time.monotonic()
    for i in range(COUNT):
        try:
            conns.append(Conn(context))
            in_a_row = 0
        except (OSError, ValueError) as e:
            failed += 1
            in_a_row += 1
            error = f"{type(e).__name__}:_{e}".replace(" ", "_")[:80]
            if in_a_row >= GIVE_UP:  # the proxy holds no more: the rest is not tried
                failed = COUNT - len(conns)
                error = f"gave_up_at_{i + 1}:_{error}"[:100]
                break
    opening = time.monotonic() - started
    # Idle means idle for a while: molt parks an idle plaintext connection or tunnel, and trims its
    # heap, about a second after its last byte.
    time.sleep(SETTLE)
    after = pss_kb(PID)
    held = sum(1 for c in conns if c.alive())
    print(f"before_kb={before} after_kb={after} opened={len(conns)} held={held} failed={failed}"
          f" open_s={opening:.1f} error={error or '-'}")
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main()
