# HTTP/2 test support: a client connection that sends exactly what a case tells it (well-formed or
# not) and records everything molt answers. Frames molt sends are parsed with hyperframe and header
# blocks decoded with hpack (Debian's python3-hyperframe and python3-hpack); what a case expects
# of them (a connection error, a stream error, a connection alive) is in h2expect.py.

import socket
import ssl
import time

import hpack
from hyperframe import frame as hf

from h2expect import Expectations
from h2frames import (CONTINUATION, DATA, ENABLE_PUSH, END_HEADERS, END_STREAM, HEADERS,
                      INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, PREFACE, PRIORITY_FLAG, TIMEOUT,
                      Failure, error_name, frame, ping_frame, priority_payload, request_fields,
                      settings_frame, to_bytes, window_update_frame)


# ---- a client connection ----

class Stream:
    """What molt sent on one stream."""

    def __init__(self, sid, recv_window):
        self.id = sid
        self.headers = None          # the final response's fields
        self.informational = []      # 1xx responses' fields
        self.trailers = None
        self.data = bytearray()
        self.data_frames = []        # length of each DATA frame's data
        self.ended = False           # END_STREAM seen
        self.reset = None            # RST_STREAM error code from molt
        self.recv_window = recv_window
        self.send_window = 65535

    @property
    def status(self):
        for name, value in self.headers or ():
            if name == ":status":
                return int(value)
        return None

    def header(self, name):
        for n, v in self.headers or ():
            if n == name:
                return v
        return None


class Conn(Expectations):
    """One client connection (plaintext with prior knowledge, or TLS with ALPN).

    Reading is driven by the case (`wait`, `response`, `expect_*`); every frame read updates the
    recorded state. By default the connection behaves: it acknowledges SETTINGS and PING, and
    gives back window credit for every DATA frame (`auto_window`). It also checks molt's side of
    flow control: DATA beyond the window this client granted is recorded in `violations`."""

    def __init__(self, port, host="127.0.0.1", tls=False, alpn=("h2", "http/1.1"),
                 timeout=TIMEOUT):
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
            self.alpn = raw.selected_alpn_protocol()
        self.sock = raw
        self.buf = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.streams = {}
        self.next_id = 1
        self.sent_settings = {}
        self.server_settings = {}
        self.settings_frames = 0     # non-ACK SETTINGS from molt
        self.settings_acks = 0
        self.ping_acks = []
        self.goaways = []            # (last_stream_id, error_code, debug data)
        self.pushes = 0
        self.closed = False
        self.close_reason = None
        self.log = []                # a short description of each frame molt sent
        self.auto_ack = True
        self.auto_window = True
        self.violations = []
        self.recv_window = 65535     # connection window granted to molt
        self.send_window = 65535     # connection window molt granted to us
        self.max_frame_size = 16384  # molt's SETTINGS_MAX_FRAME_SIZE
        self.frame_limit = 16384     # ours: molt must not send larger frames
        self.pending_block = None    # [stream, end_stream, fragment] until END_HEADERS
        self.bytes_received = 0

    # -- lifecycle --

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def handshake(self, settings=None, wait_ack=True):
        """Sends the preface and SETTINGS (ENABLE_PUSH=0 unless told otherwise), then waits for
        molt's SETTINGS (answered by the ACK) and, unless told not to, for its ACK of ours."""
        settings = {ENABLE_PUSH: 0} if settings is None else settings
        self.sent_settings.update(settings)
        self.send(PREFACE + settings_frame(settings))
        ok = self.wait(lambda: self.settings_frames > 0 and (self.settings_acks > 0 or not wait_ack))
        if not ok:
            raise Failure("no HTTP/2 handshake with molt within %.0f s: %s" %
                          (self.timeout, self.describe()))
        return self

    # -- sending --

    def send(self, data):
        """Sends bytes; False once molt has closed the connection (the case then reads what it
        answered before)."""
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            raise Failure("molt did not read what was sent for %.0f s" % self.timeout)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            self.closed = True
            self.close_reason = "send: %s" % e.__class__.__name__
            return False

    def new_stream_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = Stream(sid, self.sent_settings.get(INITIAL_WINDOW_SIZE, 65535))
            st.send_window = self.server_settings.get(INITIAL_WINDOW_SIZE, 65535)
            self.streams[sid] = st
        return st

    def send_headers(self, headers, end_stream=True, sid=None, priority=None, huffman=True):
        """HEADERS (and CONTINUATION when the block exceeds molt's frame size) encoded with this
        connection's HPACK encoder. Returns the stream id."""
        sid = self.new_stream_id() if sid is None else sid
        self.stream(sid)
        encoded = self.encoder.encode(headers, huffman=huffman)
        return self.send_block(encoded, sid=sid, end_stream=end_stream, priority=priority)

    def send_block(self, encoded, sid=None, end_stream=True, priority=None, end_headers=True,
                   extra_flags=0):
        """A header block as given, in HEADERS plus as many CONTINUATION frames as it needs."""
        sid = self.new_stream_id() if sid is None else sid
        self.stream(sid)
        flags = extra_flags | (END_STREAM if end_stream else 0)
        prefix = b""
        if priority is not None:
            flags |= PRIORITY_FLAG
            prefix = priority_payload(*priority)
        room = self.max_frame_size - len(prefix)
        first, rest = encoded[:room], encoded[room:]
        chunks = [rest[i:i + self.max_frame_size] for i in range(0, len(rest), self.max_frame_size)]
        out = frame(HEADERS, flags | (END_HEADERS if end_headers and not chunks else 0), sid,
                    prefix + first)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            out += frame(CONTINUATION, END_HEADERS if end_headers and last else 0, sid, chunk)
        self.send(out)
        return sid

    def send_data(self, sid, data, end_stream=True, frame_size=None):
        """DATA within the windows molt granted, waiting for its WINDOW_UPDATEs as needed."""
        st = self.stream(sid)
        data = memoryview(to_bytes(data))
        size = frame_size or self.max_frame_size
        while len(data) > 0:
            if not self.wait(lambda: min(self.send_window, st.send_window) > 0 or
                             st.reset is not None):
                raise Failure("molt left its window closed for %.0f s (stream %d)" %
                              (self.timeout, sid))
            if st.reset is not None or self.closed:
                return
            n = min(size, len(data), self.send_window, st.send_window)
            last = n == len(data)
            self.send(frame(DATA, END_STREAM if (last and end_stream) else 0, sid,
                            bytes(data[:n])))
            self.send_window -= n
            st.send_window -= n
            data = data[n:]
        return sid

    def send_settings(self, pairs):
        """SETTINGS mid-connection; a new INITIAL_WINDOW_SIZE moves the windows this client
        tracks for molt's open streams by the difference (RFC 9113 §6.9.2)."""
        if INITIAL_WINDOW_SIZE in pairs:
            delta = pairs[INITIAL_WINDOW_SIZE] - self.sent_settings.get(INITIAL_WINDOW_SIZE, 65535)
            for st in self.streams.values():
                st.recv_window += delta
        self.sent_settings.update(pairs)
        self.send(settings_frame(pairs))

    def end_stream(self, sid):
        self.send(frame(DATA, END_STREAM, sid))

    def request(self, headers, body=None, sid=None, frame_size=None):
        """A whole request: HEADERS, then the body (if any) in DATA frames."""
        sid = self.send_headers(headers, end_stream=body is None, sid=sid)
        if body is not None:
            if len(body) == 0:
                self.end_stream(sid)
            else:
                self.send_data(sid, body, end_stream=True, frame_size=frame_size)
        return sid

    def get(self, path="/", authority="h2.test", extra=(), timeout=None):
        sid = self.request(request_fields(path, authority=authority, extra=extra))
        return self.response(sid, timeout)

    # -- reading --

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            self.closed = True
            self.close_reason = "recv: %s" % e.__class__.__name__
            return False
        if not chunk:
            self.closed = True
            self.close_reason = "EOF"
            return False
        self.bytes_received += len(chunk)
        self.buf += chunk
        return True

    def read_frame(self, timeout=None):
        """Reads and records one frame; None on timeout or once the connection is closed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < 9 and not self.buf.startswith(b"HTTP/"):
            if self.closed or not self._fill(deadline):
                break
        if self.buf.startswith(b"HTTP/") and self.settings_frames == 0:
            line = bytes(self.buf).split(b"\r\n", 1)[0].decode("latin-1")
            raise Failure("molt answered in HTTP/1.x, not HTTP/2: %r" % line)
        if len(self.buf) < 9:
            return None
        length = int.from_bytes(self.buf[0:3], "big")
        if length > self.frame_limit:
            raise Failure("molt sent a frame of %d bytes, over SETTINGS_MAX_FRAME_SIZE %d (%s)" %
                          (length, self.frame_limit, self.buf[:9].hex()))
        while len(self.buf) < 9 + length:
            if self.closed or not self._fill(deadline):
                return None
        head, body = bytes(self.buf[:9]), bytes(self.buf[9:9 + length])
        del self.buf[:9 + length]
        try:
            f, _ = hf.Frame.parse_frame_header(memoryview(head))
            f.parse_body(memoryview(body))
        except Exception as e:  # hyperframe's errors: molt sent a frame RFC 9113 forbids
            raise Failure("molt sent an invalid frame %s: %s" % (head.hex(), e))
        self._record(f, head[4])
        return f

    def _record(self, f, flag_byte):
        kind = f.__class__.__name__.replace("Frame", "")
        desc = "%s(%d%s)" % (kind, f.stream_id, "".join(",%s" % x for x in sorted(f.flags)))
        if isinstance(f, hf.GoAwayFrame):
            desc += "[%s last=%d %r]" % (error_name(f.error_code), f.last_stream_id,
                                         bytes(f.additional_data)[:80])
        elif isinstance(f, hf.RstStreamFrame):
            desc += "[%s]" % error_name(f.error_code)
        elif isinstance(f, hf.DataFrame):
            desc += "[%d]" % len(f.data)
        if len(self.log) < 400:
            self.log.append(desc)
        if self.pending_block is not None and not (
                isinstance(f, hf.ContinuationFrame) and f.stream_id == self.pending_block[0]):
            raise Failure("molt interrupted a header block with %s" % desc)

        if isinstance(f, hf.SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acks += 1
                return
            self.settings_frames += 1
            if INITIAL_WINDOW_SIZE in f.settings:
                old = self.server_settings.get(INITIAL_WINDOW_SIZE, 65535)
                for st in self.streams.values():
                    st.send_window += f.settings[INITIAL_WINDOW_SIZE] - old
            self.server_settings.update(f.settings)
            self.max_frame_size = self.server_settings.get(MAX_FRAME_SIZE, 16384)
            if self.auto_ack:
                self.send(settings_frame(ack=True))
        elif isinstance(f, hf.PingFrame):
            if "ACK" in f.flags:
                self.ping_acks.append(bytes(f.opaque_data))
            elif self.auto_ack:
                self.send(ping_frame(bytes(f.opaque_data), ack=True))
        elif isinstance(f, hf.GoAwayFrame):
            self.goaways.append((f.last_stream_id, f.error_code, bytes(f.additional_data)))
        elif isinstance(f, hf.RstStreamFrame):
            self.stream(f.stream_id).reset = f.error_code
        elif isinstance(f, hf.WindowUpdateFrame):
            if f.stream_id == 0:
                self.send_window += f.window_increment
            else:
                self.stream(f.stream_id).send_window += f.window_increment
        elif isinstance(f, (hf.HeadersFrame, hf.PushPromiseFrame)):
            if isinstance(f, hf.PushPromiseFrame):
                self.pushes += 1
            self.pending_block = [f.stream_id, "END_STREAM" in f.flags, bytearray(f.data),
                                  isinstance(f, hf.PushPromiseFrame)]
            if "END_HEADERS" in f.flags:
                self._block_done()
        elif isinstance(f, hf.ContinuationFrame):
            self.pending_block[2] += f.data
            if "END_HEADERS" in f.flags:
                self._block_done()
        elif isinstance(f, hf.DataFrame):
            st = self.stream(f.stream_id)
            st.data += f.data
            st.data_frames.append(len(f.data))
            n = f.flow_controlled_length
            self.recv_window -= n
            st.recv_window -= n
            if self.recv_window < 0 or st.recv_window < 0:
                self.violations.append("stream %d: DATA beyond the window (connection %d, "
                                       "stream %d)" % (f.stream_id, self.recv_window,
                                                       st.recv_window))
            if "END_STREAM" in f.flags:
                st.ended = True
            if self.auto_window and n > 0:
                self.grant(0, n)
                if not st.ended:
                    self.grant(f.stream_id, n)

    def _block_done(self):
        sid, end_stream, fragment, push = self.pending_block
        self.pending_block = None
        try:
            fields = self.decoder.decode(bytes(fragment))
        except Exception as e:  # hpack's errors: molt's encoder and ours disagree
            raise Failure("molt sent a header block hpack cannot decode: %s" % e)
        if push:
            return
        st = self.stream(sid)
        if st.headers is None:
            status = dict(fields).get(":status", "")
            if status.startswith("1"):
                st.informational.append(fields)
            else:
                st.headers = fields
        else:
            st.trailers = fields
        if end_stream:
            st.ended = True

    def grant(self, sid, increment):
        """WINDOW_UPDATE, counted in the window this client tracks for molt."""
        if sid == 0:
            self.recv_window += increment
        else:
            self.stream(sid).recv_window += increment
        self.send(window_update_frame(sid, increment))

    def wait(self, predicate, timeout=None):
        """Reads frames until `predicate()` holds (True), or the timeout or a close (False)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if self.closed and len(self.buf) < 9:
                return False
            if remaining <= 0:
                return False
            f = self.read_frame(remaining)
            if f is None and self.closed:
                return predicate()

    def wait_closed(self, timeout=None):
        """Reads (and records) until molt closes the connection."""
        return self.wait(lambda: False, timeout) or self.closed

    def response(self, sid, timeout=None):
        """Waits until stream `sid` ended or was reset."""
        st = self.stream(sid)
        if not self.wait(lambda: st.ended or st.reset is not None, timeout):
            raise Failure("stream %d: no complete response within %.0f s (%s)" %
                          (sid, self.timeout if timeout is None else timeout, self.describe()))
        return st

    def ping(self, opaque=b"alive?!!", timeout=None):
        """PING round trip: True when molt acknowledged it with the same payload."""
        self.send(ping_frame(opaque))
        return self.wait(lambda: opaque in self.ping_acks, timeout)

    def describe(self):
        frames = ", ".join(self.log[-12:]) or "no frame"
        state = " closed (%s)" % self.close_reason if self.closed else ""
        return "frames: %s;%s" % (frames, state)
