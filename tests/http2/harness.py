# The HTTP/2 suite's harness: the processes a case talks to (the project's test origin, a small
# HTTP/1.1 origin in this process for what molt-origin cannot do, and molt itself, one instance
# per group of frontends, each started on first use), memory readings, and the runner.
#
# Every process is started here in its own session (molt's workers inherit its process group) and
# stopped by its pid, then its group, in a finally block.

import fnmatch
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import h2support as h2

CASES = []
# Seconds the whole run may take (stretched under the sanitizers): past it, the remaining cases
# fail unrun, so that a molt that answers nothing is reported before meson's timeout (300 s).
RUN_BUDGET = 240


def case(fn):
    """Registers a case: a function taking the Env; its docstring cites what it checks."""
    if any(c.__name__ == fn.__name__ for c in CASES):
        raise RuntimeError("two cases named %s" % fn.__name__)
    CASES.append(fn)
    return fn


# ---- child processes ----

class Child:
    """A process whose stdout and stderr are read line by line by a thread."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.pid = self.proc.pid
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_line(self, pattern, timeout, start=0):
        """The first line from `start` on matching `pattern` (a re.Match), or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                remaining = deadline - time.monotonic()
                if self.eof or remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def line_count(self):
        with self.cond:
            return len(self.lines)

    def lines_since(self, start):
        with self.cond:
            return list(self.lines[start:])

    def tail(self, n=15):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def stop(self, first=signal.SIGINT, grace=5.0):
        """`first` to the pid, then SIGKILL to its process group (what it left behind)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, first)
                self.proc.wait(grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(2)


def tree_pids(root):
    """`root` and its descendants (from /proc/PID/task/*/children)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return pids


def pss_bytes(root):
    """Sum of Pss over `root`'s process tree (/proc/PID/smaps_rollup)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


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


# ---- molt ----

class MoltStartError(Exception):
    pass


class Molt:
    """`molt -f CONFIG`, waited for until generation 1 serves."""

    def __init__(self, binary, group, config, workdir):
        self.group = group
        self.dir = os.path.join(workdir, group)
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "molt.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)
        self.child = Child([binary, "-f", self.config_path])
        self.pid = self.child.pid
        if not self.child.wait_line(r"generation 1 serving", 20 * h2.TIME_SCALE):
            tail = self.child.tail()
            self.child.stop()
            raise MoltStartError("molt (%s) did not serve within %d s:\n%s" %
                                 (group, 20 * h2.TIME_SCALE, tail))
        self.ports = {}
        for line in self.child.lines_since(0):
            m = re.search(r"generation 1: frontend (\S+) listening on \S*:(\d+)", line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))

    def crashes_since(self, start):
        """Log lines saying a worker died other than by a stop (SIGTERM)."""
        bad = []
        for line in self.child.lines_since(start):
            if "died unexpectedly" in line:
                bad.append(line)
            m = re.search(r"worker slot \d+ pid \d+ exited \(signal (\d+)", line)
            if m and int(m.group(1)) != signal.SIGTERM:
                bad.append(line)
        return bad

    def memory(self):
        return pss_bytes(self.pid)


def backends(env):
    return [{"name": "be", "servers": [{"name": "o", "address": "127.0.0.1:%d" % env.origin_port}]},
            {"name": "py", "servers": [{"name": "p", "address": "127.0.0.1:%d" % env.py.port}]}]


def frontend(name, bind="127.0.0.1:0", **extra):
    fe = {"name": name, "mode": "http", "bind": [bind], "default_backend": "be",
          "routes": [{"path_prefix": "/py/", "backend": "py"}]}
    fe.update(extra)
    return fe


def config_main(env):
    """Defaults (HTTP/2 on by default) plus the attack frontend with a short client timeout, and
    a TLS frontend. Only keys that molt knew before HTTP/2, so that its HTTP/1.1 half runs on any
    build."""
    return {"global": {"workers": 1, "hard_stop_after": "20s"},
            "frontends": [frontend("h2"),
                          frontend("guard", timeouts={"client": "2s"}),
                          frontend("tls", bind={"address": "127.0.0.1:0", "tls": True},
                                   certificates=[env.certificate()])],
            "backends": backends(env)}


def config_options(env):
    """The http2 object and a bind's alpn list."""
    return {"global": {"workers": 1, "hard_stop_after": "20s"},
            "frontends": [frontend("small", http2={"max_concurrent_streams": 8,
                                                   "max_header_list_size": "16KB"}),
                          frontend("h1only", bind={"address": "127.0.0.1:0",
                                                   "alpn": ["http/1.1"]})],
            "backends": backends(env)}


def config_drain(env):
    """Its own instance: its cases reload it."""
    return {"global": {"workers": 1, "hard_stop_after": "20s"},
            "frontends": [frontend("drain")],
            "backends": backends(env)}


GROUPS = {"main": config_main, "options": config_options, "drain": config_drain}
FRONTENDS = {"h2": "main", "guard": "main", "tls": "main", "small": "options",
             "h1only": "options", "drain": "drain"}


class Env:
    """What a case uses: ports by frontend name, connections (closed after the case), the
    origins, and the molt instance behind a frontend."""

    def __init__(self, molt_bin, origin_bin):
        self.molt_bin = molt_bin
        self.origin_bin = origin_bin
        self.workdir = tempfile.mkdtemp(prefix="molt-h2-")
        self.groups = {}
        self.group_errors = {}
        self.conns = []
        self.origin = None
        self.py = None
        self._cert = None

    def start(self):
        self.py = PyOrigin()
        self.origin_name = "origin-h2"
        self.origin = Child([self.origin_bin, "--http", "127.0.0.1:0", "--name",
                             self.origin_name])
        m = self.origin.wait_line(r"listening http 127\.0\.0\.1:(\d+)", 10 * h2.TIME_SCALE)
        if not m:
            raise RuntimeError("molt-origin did not listen:\n" + self.origin.tail())
        self.origin_port = int(m.group(1))

    def stop(self):
        self.close_conns()
        for molt in self.groups.values():
            molt.child.stop()
        if self.origin:
            self.origin.stop(first=signal.SIGTERM)
        if self.py:
            self.py.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def certificate(self):
        if self._cert is None:
            path = os.path.join(self.workdir, "localhost.pem")
            key, crt = path + ".key", path + ".crt"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                            "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                            "-keyout", key, "-out", crt], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(path, "wb") as out:
                for part in (crt, key):
                    with open(part, "rb") as f:
                        out.write(f.read())
            self._cert = path
        return self._cert

    def molt(self, frontend_name):
        group = FRONTENDS[frontend_name]
        if group in self.group_errors:
            raise h2.Failure(self.group_errors[group])
        if group not in self.groups:
            try:
                self.groups[group] = Molt(self.molt_bin, group, GROUPS[group](self), self.workdir)
            except MoltStartError as e:
                self.group_errors[group] = str(e)
                raise h2.Failure(str(e))
        return self.groups[group]

    def port(self, frontend_name="h2"):
        molt = self.molt(frontend_name)
        if frontend_name not in molt.ports:
            raise h2.Failure("molt did not log frontend %s's port" % frontend_name)
        return molt.ports[frontend_name]

    def conn(self, frontend_name="h2", handshake=True, settings=None, **kw):
        """A connection to a frontend, after the HTTP/2 handshake unless told otherwise."""
        c = h2.Conn(self.port(frontend_name), tls=frontend_name == "tls", **kw)
        self.conns.append(c)
        if handshake:
            c.handshake(settings)
        return c

    def close_conns(self):
        for c in self.conns:
            c.close()
        self.conns = []


# ---- the runner ----

def run_case(env, fn, limit):
    """Runs one case in a thread bounded by `limit` seconds; returns (why it failed or None,
    the case's note, molt's log lines by group from where the case began)."""
    result = {}

    def body():
        try:
            note = fn(env)
            result["ok"] = note
        except h2.Failure as e:
            result["fail"] = str(e)
        except Exception as e:  # a broken case or an unexpected socket error: report, go on
            result["fail"] = "%s: %s" % (e.__class__.__name__, e)
            result["trace"] = traceback.format_exc()

    starts = {g: m.child.line_count() for g, m in env.groups.items()}
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(limit)
    env.close_conns()
    logs = {g: m.child.lines_since(starts.get(g, 0)) for g, m in env.groups.items()}
    if t.is_alive():
        return "took more than %d s" % limit, None, logs
    crashes = []
    for g, m in env.groups.items():
        crashes += m.crashes_since(starts.get(g, 0))
    if crashes:
        return "a molt worker died: " + "; ".join(crashes), None, logs
    if "fail" in result:
        logs["traceback"] = result.get("trace", "").splitlines()
        return result["fail"], None, logs
    return None, result.get("ok"), logs


def main(argv=None, modules=None):
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args
    patterns = [a for a in args if not a.startswith("-")]
    cases = [c for c in CASES if modules is None or c.__module__ in modules]
    if modules:
        cases.sort(key=lambda c: modules.index(c.__module__))  # stable: file order within
    if patterns:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.__name__, p) for p in patterns)]
    if "--list" in args:
        for c in cases:
            doc = (c.__doc__ or "").strip().splitlines()
            print("%-45s %s" % (c.__name__, doc[0] if doc else ""))
        return 0
    if not cases:
        print("no case matches %s" % " ".join(patterns))
        return 2
    molt_bin = os.environ.get("MOLT_BIN")
    origin_bin = os.environ.get("MOLT_ORIGIN")
    if not molt_bin or not origin_bin:
        print("MOLT_BIN and MOLT_ORIGIN must name the binaries (meson test sets them)")
        return 2
    env = Env(molt_bin, origin_bin)
    failed = []
    began = time.monotonic()
    try:
        env.start()
        budget = RUN_BUDGET * h2.TIME_SCALE
        for fn in cases:
            if time.monotonic() - began > budget:
                failed.append(fn.__name__)
                print("FAIL %s: not run, the run took its %d s already" % (fn.__name__, budget),
                      flush=True)
                continue
            t0 = time.monotonic()
            why, note, logs = run_case(env, fn, 60 * h2.TIME_SCALE)
            took = time.monotonic() - t0
            if why is None:
                print("ok   %s (%.2fs)%s" % (fn.__name__, took, " " + note if note and verbose
                                              else ""), flush=True)
            else:
                failed.append(fn.__name__)
                print("FAIL %s: %s" % (fn.__name__, why.rstrip()), flush=True)
                if verbose:
                    for g, lines in logs.items():
                        if lines:
                            what = "traceback" if g == "traceback" else "molt (%s) meanwhile" % g
                            print("  --- %s ---\n  %s" %
                                  (what, "\n  ".join(line[:240] for line in lines[-10:])))
    finally:
        env.stop()
    print("%d passed, %d failed, %.1f s" % (len(cases) - len(failed), len(failed),
                                           time.monotonic() - began))
    if failed:
        print("failed: " + " ".join(failed))
    return 1 if failed else 0

