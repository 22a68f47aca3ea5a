#!/usr/bin/env python3
"""bench/reload-migration's driver (the wrapper installs, builds and runs it): per proxy, a fresh
instance holding every connection without a reload (the baseline), then a fresh instance through
3 reloads with connections opened before each; for molt, timed reloads after. Prints markdown.
Every process it starts is stopped by pid when its phase ends."""
import base64
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reload_soak import children, free_port, log, memory, tree, wait_http  # noqa: E402

BUILD = sys.argv[1]
WEBSOCKETS = int(os.environ.get("BENCH_WEBSOCKETS", "1000"))
KEEPALIVE = int(os.environ.get("BENCH_KEEPALIVE", "1000"))
RELOADS = 3
TIMING_RELOADS = int(os.environ.get("BENCH_TIMING_RELOADS", "30"))
PROXIES = os.environ.get("BENCH_PROXIES", "molt haproxy nginx").split()
BACKENDS = 416
HOST = "app1.example.com"


class Conn:
    """A client connection through the proxy: a websocket or a keep-alive HTTP connection."""

    def __init__(self, port, websocket):
        self.websocket = websocket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if websocket:
            key = base64.b64encode(os.urandom(16)).decode()
            self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = self._head()
            if not head.startswith(b"HTTP/1.1 101"):
                raise OSError("websocket: no 101")
        elif not self.check():
            raise OSError("keep-alive: no answer")

    def _head(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed")
            data += chunk
        self.rest = data.split(b"\r\n\r\n", 1)[1]
        return data

    def check(self):
        """A websocket echoes one masked frame; a keep-alive connection answers one request."""
        try:
            if self.websocket:
                payload, mask = b"still here?", os.urandom(4)
                self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                data = b""
                while len(data) < 2 + len(payload):
                    chunk = self.sock.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return data[2:] == payload
            self.sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head = self._head()
            if not head.startswith(b"HTTP/1.1 200"):
                return False
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            body = self.rest
            while m and len(body) < int(m.group(1)):
                chunk = self.sock.recv(4096)
                if not chunk:
                    return False
                body += chunk
            return True
        except OSError:
            return False

    def close(self):
        self.sock.close()


class Proxy:
    def __init__(self, work, origin):
        self.work, self.origin = work, origin
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(self.configure(), stdout=subprocess.DEVNULL,
                                        stderr=open(self.logpath(), "w"), start_new_session=True)
        self.pid = self.process.pid
        wait_http(self.port, self.pid, limit=120)

    def logpath(self):
        return os.path.join(self.work, self.name + ".log")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()

    def workers(self):
        return [p for p in children(self.pid) if "zygote" not in title(p)]

    def reload(self):
        """Reloads and returns once a new worker serves."""
        before = set(self.workers())
        os.kill(self.pid, self.reload_signal)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if set(self.workers()) - before:
                break
            time.sleep(0.02)
        time.sleep(1.0)  # the new workers take over; the old ones get their drain order
        wait_http(self.port, self.pid)

    def generations(self):
        """Worker generations still running (HAProxy: one process each)."""
        return len(self.workers())


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Molt(Proxy):
    name = "molt"
    reload_signal = signal.SIGHUP

    def configure(self):
        self.socket = os.path.join(self.work, "molt-api.sock")
        backends = [{"name": f"bk_{i}", "servers": [
            {"name": "server1", "address": f"127.0.0.1:{self.origin}"},
            {"template": "server", "from": 2, "to": 101, "address": "127.0.0.1:1", "check": True,
             "disabled": True}]} for i in range(1, BACKENDS + 1)]
        backends.append({"name": "bk_no_match", "deny": 403})
        config = {
            "global": {"workers": 2, "api_socket": self.socket, "max_old_generations": 100,
                       "hard_stop_after": "10m"},
            "frontends": [{"name": "www", "mode": "http", "bind": [f"127.0.0.1:{self.port}"],
                           "timeouts": {"keep_alive": "1h", "client": "1h"},
                           "routes": [{"host_map": os.path.join(self.work, "hosts.map"),
                                       "backend_prefix": "bk_"}],
                           "default_backend": "bk_no_match"}],
            "backends": backends}
        path = os.path.join(self.work, "molt.json")
        with open(path, "w") as f:
            json.dump(config, f)
        return [os.path.join(BUILD, "molt"), "-f", path]

    def ask(self, request):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(self.socket)
            s.sendall((json.dumps(request) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def reload(self):
        lines = self.lines()
        target = sum(1 for line in lines if " serving with " in line) + 1
        os.kill(self.pid, self.reload_signal)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sum(1 for line in self.lines() if " serving with " in line) >= target:
                return
            time.sleep(0.02)
        raise RuntimeError("molt: no new generation serving")

    def lines(self):
        with open(self.logpath(), errors="replace") as f:
            return [line for line in f if " master: " in line]

    def generations(self):
        return len(self.ask({"cmd": "proc"})["generations"])

    def retire_times(self):
        """Seconds from each 'generation N serving' to 'generation N-1 gone', from the log."""
        stamp = lambda line: datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        serving, gone = {}, {}
        for line in self.lines():
            m = re.search(r"master: generation (\d+) serving with", line)
            if m:
                serving[int(m.group(1))] = stamp(line)
            m = re.search(r"master: generation (\d+) gone", line)
            if m:
                gone[int(m.group(1))] = stamp(line)
        return [(gone[g - 1] - serving[g]).total_seconds() for g in serving if g - 1 in gone]


class Haproxy(Proxy):
    name = "haproxy"
    reload_signal = signal.SIGUSR2

    def configure(self):
        path = os.path.join(self.work, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(f"""global
  nbthread 2
  ulimit-n 20000
  no strict-limits
  maxconn 9000
  hard-stop-after 10m
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
  timeout http-keep-alive 1h
frontend www
  bind 127.0.0.1:{self.port}
  use_backend bk_%[req.hdr(host),lower,map({self.work}/hosts.map,no_match)]
backend bk_no_match
  http-request deny deny_status 403
""")
            for i in range(1, BACKENDS + 1):
                f.write(f"backend bk_{i}\n  server server1 127.0.0.1:{self.origin}\n"
                        f"  server-template srv 2-101 127.0.0.1:1 check disabled\n")
        return ["haproxy", "-W", "-db", "-f", path]


class Nginx(Proxy):
    name = "nginx"
    reload_signal = signal.SIGHUP

    def configure(self):
        path = os.path.join(self.work, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"""worker_processes 2;
daemon off;
pid {self.work}/nginx.pid;
error_log {self.work}/nginx-error.log;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_timeout 1h;
  keepalive_requests 1000000;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  map $host $backend {{
    default bk_1;
""")
            for i in range(1, BACKENDS + 1):
                f.write(f"    app{i}.example.com bk_{i};\n")
            f.write("  }\n")
            down = "".join("    server 127.0.0.1:1 down;\n" for _ in range(100))
            for i in range(1, BACKENDS + 1):
                f.write(f"  upstream bk_{i} {{\n    server 127.0.0.1:{self.origin};\n{down}"
                        f"    keepalive 16;\n  }}\n")
            f.write(f"""  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://$backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }}
  }}
}}
""")
        return ["nginx", "-c", path]

    def generations(self):
        """Two worker processes a generation; an old one keeps both (its connections are spread
        over them)."""
        return (len(self.workers()) + 1) // 2


def instance_pss(proxy):
    total = 0
    for pid in tree(proxy.pid):
        try:
            total += memory(pid)["pss"]
        except OSError:
            pass
    return total


def open_batch(port, conns):
    for _ in range(WEBSOCKETS):
        conns.append(Conn(port, True))
    for _ in range(KEEPALIVE):
        conns.append(Conn(port, False))


def check_all(conns):
    """Checks every connection; drops (and counts) those that fail."""
    lost = {"ws": 0, "ka": 0}
    for c in list(conns):
        if not c.check():
            lost["ws" if c.websocket else "ka"] += 1
            c.close()
            conns.remove(c)
    return lost


def run(kind, work, origin):
    cls = {"molt": Molt, "haproxy": Haproxy, "nginx": Nginx}[kind]
    result = {"proxy": kind}
    # The baseline: every connection the reload phase ends with, no reload.
    proxy = cls(work, origin)
    proxy.start()
    conns = []
    try:
        for _ in range(RELOADS):
            open_batch(proxy.port, conns)
        time.sleep(1.5)
        result["baseline_pss"] = instance_pss(proxy)
    finally:
        for c in conns:
            c.close()
        proxy.stop()
    time.sleep(1)
    # Three reloads, connections opened before each, all checked after each.
    proxy = cls(work, origin)
    proxy.start()
    conns, lost = [], {"ws": 0, "ka": 0}
    try:
        for r in range(RELOADS):
            open_batch(proxy.port, conns)
            proxy.reload()
            time.sleep(1.0)
            for k, v in check_all(conns).items():
                lost[k] += v
            log(f"{kind}: reload {r + 1}: {len(conns)} connections answer, lost so far {lost}")
        time.sleep(1.0)
        result["workers"] = len(proxy.workers())
        result["generations"] = proxy.generations()
        result["pss"] = instance_pss(proxy)
        result["lost"] = lost
        result["connections"] = len(conns)
        if kind == "molt" and TIMING_RELOADS:
            for i in range(TIMING_RELOADS):
                # One at a time: the previous old generation is gone before the next reload.
                deadline = time.monotonic() + 60
                while proxy.generations() > 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                proxy.reload()
            time.sleep(2.0)
            for k, v in check_all(conns).items():
                lost[k] += v
            result["times"] = proxy.retire_times()
            result["after_timing"] = len(conns)
    finally:
        for c in conns:
            c.close()
        proxy.stop()
    return result


def main():
    work = tempfile.mkdtemp(prefix="molt-bench-")
    with open(os.path.join(work, "hosts.map"), "w") as f:
        for i in range(1, BACKENDS + 1):
            f.write(f"app{i}.example.com {i}\n")
    origin_port = free_port()
    origin = subprocess.Popen([os.path.join(BUILD, "tools/origin/molt-origin"), "--http",
                               f"127.0.0.1:{origin_port}", "--quiet"], stdout=subprocess.DEVNULL)
    try:
        wait_http(origin_port, origin.pid)
        results = [run(kind, work, origin_port) for kind in PROXIES]
    finally:
        origin.terminate()
        origin.wait()
    report(results)


def report(results):
    total = RELOADS * (WEBSOCKETS + KEEPALIVE)
    print(f"{RELOADS} reloads; before each, {WEBSOCKETS} websockets and {KEEPALIVE} keep-alive "
          f"connections opened ({total} in all); every one checked after every reload.\n")
    print("| proxy | worker processes at the end | generations | connections still answering "
          "| websockets lost | keep-alive connections lost | instance PSS | PSS fresh, same "
          "connections | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['proxy']} | {r['workers']} | {r['generations']} | {r['connections']} of "
              f"{total} | {r['lost']['ws']} | {r['lost']['ka']} | {r['pss'] / 1024:.1f} MiB | "
              f"{r['baseline_pss'] / 1024:.1f} MiB | {r['pss'] / r['baseline_pss']:.2f} × |")
    for r in results:
        if r.get("times"):
            t = sorted(r["times"])
            pick = lambda q: t[min(len(t) - 1, int(q * len(t)))]
            print(f"\nmolt, {len(t)} reloads with {r['connections']} connections open: old "
                  f"generation gone after the new one serves in p50 {pick(0.5) * 1000:.0f} ms, "
                  f"p90 {pick(0.9) * 1000:.0f} ms, p99 {pick(0.99) * 1000:.0f} ms, max "
                  f"{t[-1] * 1000:.0f} ms (mean {statistics.mean(t) * 1000:.0f} ms); "
                  f"{r['after_timing']} connections still answering after them.")


if __name__ == "__main__":
    main()
