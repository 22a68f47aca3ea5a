# The HTTP/2 suite's HTTP/1.1 origin in the runner's own process, for what molt-origin does not do
# (record every request it receives, answer with chunk trailers).

import socketserver
import threading


# ---- an HTTP/1.1 origin for what molt-origin does not do ----

class PyOrigin:
    """HTTP/1.1 on loopback, one thread per connection, keep-alive. It records every request
    (method, target, header fields, body) and answers:
      /py/trailers  a chunked body followed by trailer fields (X-Checksum, X-Count);
      anything else 200 "recorded\\n"."""

    TRAILERS_BODY = [b"hello ", b"trailers", b"!"]

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        origin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                origin._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def seen(self, predicate):
        with self.lock:
            return [r for r in self.requests if predicate(r)]

    def _serve(self, sock):
        sock.settimeout(30)
        rfile = sock.makefile("rb")
        try:
            while True:
                line = rfile.readline(65536)
                if not line:
                    return
                parts = line.decode("latin-1").split()
                if len(parts) != 3:
                    return
                fields = []
                while True:
                    h = rfile.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    fields.append((name.strip().lower(), value.strip()))
                body = self._body(rfile, dict(fields))
                with self.lock:
                    self.requests.append({"method": parts[0], "target": parts[1],
                                          "fields": fields, "body": body})
                close = any(n == "connection" and "close" in v.lower() for n, v in fields)
                sock.sendall(self._answer(parts[1], close))
                if close:
                    return
        except (OSError, ValueError):  # a request molt cut off half way: nothing to record
            return

    @staticmethod
    def _body(rfile, fields):
        if "content-length" in fields:
            return rfile.read(int(fields["content-length"]))
        if "chunked" in fields.get("transfer-encoding", ""):
            body = b""
            while True:
                size = int(rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += rfile.read(size)
                rfile.readline()
        return b""

    def _answer(self, target, close):
        conn = b"Connection: close\r\n" if close else b""
        if target.startswith("/py/trailers"):
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in self.TRAILERS_BODY)
            return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked"
                    b"\r\nTrailer: X-Checksum, X-Count\r\n" + conn + b"\r\n" + chunks +
                    b"0\r\nX-Checksum: 5eb63bbb\r\nX-Count: 3\r\n\r\n")
        body = b"recorded\n"
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n" %
                len(body)) + conn + b"\r\n" + body
