# HTTP/2 test support: one request on its own connection, through python3-h2's H2Connection or
# over HTTP/1.1, and the body the test origin's /size/N sends.

import socket

from h2frames import TIMEOUT, Failure, request_fields, to_bytes


def size_body(offset, length):
    """What the test origin's /size/N sends from `offset` on: 'a'..'z' repeating."""
    return bytes(97 + (i % 26) for i in range(offset, offset + length))


def h2lib_request(port, method="GET", path="/", body=None, authority="h2.test",
                  timeout=TIMEOUT):
    """One request through python3-h2's H2Connection, a client implementation other than Conn
    (and strict about what a server sends). Returns (status, fields, body bytes, trailers)."""
    import h2.config
    import h2.connection
    import h2.events
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_fields(path, method, authority),
                          end_stream=body is None)
        if body is not None:
            conn.send_data(sid, body, end_stream=True)  # within the initial windows
        sock.sendall(conn.data_to_send())
        fields, data, trailers = None, bytearray(), None
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise Failure("h2 client: connection closed before the response ended")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    fields = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    trailers = ev.headers
                elif isinstance(ev, h2.events.StreamReset):
                    raise Failure("h2 client: stream reset (%s)" % ev.error_code)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise Failure("h2 client: GOAWAY %s" % ev.error_code)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    status = int(dict(fields or [])[":status"])
                    return status, fields, bytes(data), trailers
            sock.sendall(conn.data_to_send())


def http1_request(port, path="/", host="h2.test", timeout=TIMEOUT, extra=b""):
    """One HTTP/1.1 request on its own connection; returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET " + to_bytes(path) + b" HTTP/1.1\r\nHost: " + to_bytes(host) +
                  b"\r\nConnection: close\r\n" + extra + b"\r\n")
        data = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise Failure("not an HTTP/1.x answer: %r" % bytes(data[:80]))
    return int(head.split(b" ", 2)[1]), body
