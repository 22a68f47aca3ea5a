#!/usr/bin/python3
"""bench/http2-throughput's idle-connection client: opens COUNT HTTP/2 connections to
127.0.0.1:PORT (TLS with ALPN h2, or plaintext with prior knowledge), each sending the client
preface, SETTINGS and one GET of PATH and reading the whole answer, then keeps them open, idle.
Prints one line of key=value pairs: the PSS (kB) of the proxy's process tree (root PID) before the
first connection and 2.5 s after the last, how many connections were opened and how many still answer a
PING after the measurement, and how many failed.
Usage: http2_idle.py PID PORT tls|h2c COUNT PATH"""
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import pss_kb  # noqa: E402

import h2.config
import h2.connection
import h2.events
import h2.exceptions

PID, PORT, MODE, COUNT, PATH = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                int(sys.argv[4]), sys.argv[5])
TIMEOUT = 5
IDLE_SETTLE = 2.5  # seconds between the last connection and the measurement


class Conn:
    """One HTTP/2 connection that has had one GET answered."""

    def __init__(self, context):
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
        try:
            if context:
                sock = context.wrap_socket(sock, server_hostname="bench.example.com")
                if sock.selected_alpn_protocol() != "h2":
                    raise OSError(f"ALPN gave {sock.selected_alpn_protocol()!r}, not h2")
            self.sock = sock
            self.h2 = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None))
            self.h2.initiate_connection()
            self.h2.send_headers(1, [(b":method", b"GET"),
                                     (b":scheme", b"https" if context else b"http"),
                                     (b":authority", f"127.0.0.1:{PORT}".encode()),
                                     (b":path", PATH.encode())], end_stream=True)
            status = None
            for event in self.exchange(h2.events.StreamEnded):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers).get(b":status")
            if status != b"200":
                raise OSError(f"status {status!r}")
        except BaseException:
            sock.close()
            raise

    def exchange(self, until):
        """Sends what is pending and reads until an event of type UNTIL; yields every event."""
        self.sock.sendall(self.h2.data_to_send())
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("closed by the proxy")
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.H2Error as e:
                raise OSError(f"not HTTP/2: {e}") from e
            done = False
            for event in events:
                if isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise OSError(f"{type(event).__name__}")
                done = done or isinstance(event, until)
                yield event
            pending = self.h2.data_to_send()
            if pending:
                self.sock.sendall(pending)
            if done:
                return

    def alive(self):
        try:
            self.h2.ping(b"idle-ok?")
            for _ in self.exchange(h2.events.PingAckReceived):
                pass
            return True
        except (OSError, h2.exceptions.H2Error):
            return False


def main():
    context = None
    if MODE == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
    # Warm-up: a few connections opened and closed, so that "before" is a proxy that has served.
    for _ in range(10):
        try:
            Conn(context).sock.close()
        except (OSError, h2.exceptions.H2Error):
            pass
    time.sleep(0.5)
    before = pss_kb(PID)
    conns, failed, error = [], 0, ""
    for i in range(COUNT):
        try:
            conns.append(Conn(context))
        except (OSError, h2.exceptions.H2Error) as e:
            failed += 1
            error = str(e).replace(" ", "_")[:80]
            if not conns and failed >= 10:  # this proxy does not speak HTTP/2 here
                failed = COUNT
                break
    # Idle means idle for a while: molt gives the exchange an idle connection keeps for the next
    # stream back after a second without a stream.
    time.sleep(IDLE_SETTLE)
    after = pss_kb(PID)
    held = sum(1 for c in conns if c.alive())
    print(f"before_kb={before} after_kb={after} opened={len(conns)} held={held} failed={failed}"
          f" error={error or '-'}")
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main()
