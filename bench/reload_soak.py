#!/usr/bin/env python3
"""The reload soak's driver (bench/reload-soak installs, builds and runs it): one storm per proxy,
then a markdown table. Every process it starts is stopped by pid at the end of its storm."""
import base64
import collections
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BUILD = sys.argv[1]
RELOADS = int(os.environ.get("BENCH_RELOADS", "1000"))
STORMS = os.environ.get("BENCH_STORMS", "molt molt-kills haproxy nginx").split()
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "20"))
WEBSOCKETS = int(os.environ.get("BENCH_WEBSOCKETS", "200"))
WARMUP_RELOADS = 10
KILL_EVERY = 5.0
SETTLE = 12.0  # after the storm, for old generations to finish (close_spread is 5 s)


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def memory(pid):
    """RSS, PSS and private (Private_Clean + Private_Dirty), KiB, from smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1])
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0),
            "private": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def connections_by_pid(port):
    """Established connections accepted on `port`: {pid: count} and {client port: pid}."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    counts, owners = collections.Counter(), {}
    for line in out.splitlines():
        m = re.search(r"\S+:\d+\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)", line)
        if m:
            counts[int(m.group(2))] += 1
            owners[int(m.group(1))] = int(m.group(2))
    return counts, owners


def wait_http(port, pid, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            raise RuntimeError(f"process {pid} exited before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


class WebSocket:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError("no 101: " + head.split(b"\r\n")[0].decode(errors="replace"))
        self.client_port = self.sock.getsockname()[1]

    def alive(self):
        """Sends one masked text frame; true when it comes back."""
        payload, mask = b"still here?", os.urandom(4)
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.sock.sendall(frame)
            data = b""
            while len(data) < 2 + len(payload):
                chunk = self.sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return data[2:2 + len(payload)] == payload
        except OSError:
            return False

    def close(self):
        self.sock.close()


def handshake_loop(port, stop, results):
    """New TLS connection, one request, close; (start, end, ok) a connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while not stop.is_set():
        start, data = time.monotonic(), b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.example.com") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
        except (OSError, ssl.SSLError):
            pass
        results.append((start, time.monotonic(), data.startswith(b"HTTP/1.1 200")))


class Proxy:
    """One proxy under test: plain port (websockets), TLS port (wrk, handshakes), its master."""

    def __init__(self, name, work, origin, extra_origin):
        self.name, self.work = name, work
        self.origin, self.extra_origin = origin, extra_origin
        self.plain, self.tls = free_port(), free_port()
        self.cert = os.path.join(work, "bench.pem")
        self.pid = None
        self.process = None

    def start(self):
        argv = self.configure()
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.work, self.name + ".log"),
                                                    "w"),
                                        start_new_session=True)
        self.pid = self.process.pid
        wait_http(self.plain, self.pid)
        wait_http(self.plain, self.pid)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()

    def reload(self):
        os.kill(self.pid, self.reload_signal)

    def api_change(self, add):
        return True, ""

    def serving_workers(self):
        return []


class Molt(Proxy):
    reload_signal = signal.SIGHUP

    def configure(self):
        self.socket = os.path.join(self.work, "molt-api.sock")
        config = {
            "global": {"workers": 2, "api_socket": self.socket, "max_old_generations": 100,
                       "hard_stop_after": "10m"},
            "frontends": [
                {"name": "www", "mode": "http", "bind": [f"127.0.0.1:{self.plain}"],
                 "default_backend": "be"},
                {"name": "tls", "mode": "http",
                 "bind": [{"address": f"127.0.0.1:{self.tls}", "tls": True}],
                 "certificates": [self.cert], "default_backend": "be"}],
            "backends": [{"name": "be", "servers": [
                {"name": "o1", "address": f"127.0.0.1:{self.origin}"}]}]}
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

    def api_change(self, add):
        if add:
            request = {"cmd": "server.add", "backend": "be",
                       "server": {"name": "extra", "address": f"127.0.0.1:{self.extra_origin}"}}
        else:
            request = {"cmd": "server.del", "backend": "be", "server": "extra",
                       "timeout_ms": 3000}
        try:
            answer = self.ask(request)
        except (OSError, ValueError) as e:
            return False, str(e)
        return answer.get("ok") is True, answer.get("error", "")

    def serving_workers(self):
        try:
            proc = self.ask({"cmd": "proc"})
        except (OSError, ValueError):
            return []
        return [w["pid"] for g in proc.get("generations", []) if g.get("phase") == "serving"
                for w in g.get("workers", []) if w.get("pid")]


class Haproxy(Proxy):
    reload_signal = signal.SIGUSR2

    def configure(self):
        self.socket = os.path.join(self.work, "haproxy.sock")
        path = os.path.join(self.work, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(f"""global
  nbthread 2
  maxconn 9000
  hard-stop-after 10m
  stats socket {self.socket} mode 600 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 50s
  timeout server 50s
  timeout tunnel 1h
  timeout http-request 10s
  timeout http-keep-alive 5s
frontend www
  bind 127.0.0.1:{self.plain}
  default_backend be
frontend tls
  bind 127.0.0.1:{self.tls} ssl crt {self.cert}
  default_backend be
backend be
  server o1 127.0.0.1:{self.origin}
""")
        return ["haproxy", "-W", "-db", "-f", path]

    def command(self, line):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall((line + "\n").encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace").strip()

    def api_change(self, add):
        try:
            if add:
                answer = self.command(f"add server be/extra 127.0.0.1:{self.extra_origin}")
                if "New server registered" not in answer:
                    return False, answer
                self.command("enable server be/extra")
                return True, ""
            self.command("disable server be/extra")
            self.command("shutdown sessions server be/extra")
            answer = self.command("del server be/extra")
            return "Server deleted" in answer, answer
        except OSError as e:
            return False, str(e)


class Nginx(Proxy):
    reload_signal = signal.SIGHUP

    def configure(self):
        path = os.path.join(self.work, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"""worker_processes 2;
daemon off;
pid {self.work}/nginx.pid;
error_log {self.work}/nginx-error.log;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  upstream be {{ server 127.0.0.1:{self.origin}; keepalive 64; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  server {{
    listen 127.0.0.1:{self.plain};
    listen 127.0.0.1:{self.tls} ssl;
    ssl_certificate {self.cert};
    ssl_certificate_key {self.cert};
    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }}
  }}
}}
""")
        return ["nginx", "-c", path]


def parse_wrk(text):
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors, kinds = 0, []
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
        kinds.append(m.group(0))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
        kinds.append(m.group(0))
    return requests, errors, "; ".join(kinds)


def storm(kind, work, origin, extra_origin):
    name = kind.split("-")[0]
    kills = kind.endswith("-kills")
    proxy = {"molt": Molt, "haproxy": Haproxy, "nginx": Nginx}[name](name, work, origin,
                                                                      extra_origin)
    proxy.start()
    result = {"storm": kind}
    wrk = None
    sockets = []
    stop = threading.Event()
    try:
        sockets = [WebSocket(proxy.plain) for _ in range(WEBSOCKETS)]
        _, owners = connections_by_pid(proxy.plain)
        ws_owner = {ws: owners.get(ws.client_port) for ws in sockets}

        wrk = subprocess.Popen(["wrk", "-t1", f"-c{CONNECTIONS}", "-d1h", "--timeout", "5s",
                                f"https://127.0.0.1:{proxy.tls}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        handshakes = []
        threads = [threading.Thread(target=handshake_loop, args=(proxy.tls, stop, handshakes))]
        api = collections.Counter()
        api_errors = collections.Counter()

        def api_loop():
            add = True
            while not stop.wait(1.0):
                ok, error = proxy.api_change(add)
                api["ok" if ok else "refused"] += 1
                if not ok:
                    api_errors[error[:120]] += 1
                # Toggle even after a refusal: a delete refused because a reload lost the
                # server added at runtime (HAProxy) is followed by a new add.
                add = not add

        if name != "nginx":
            threads.append(threading.Thread(target=api_loop))
        victims = []
        # Client ports of the websockets each victim held when it was killed: with connection
        # migration a websocket moves to the newest generation at every reload, so the worker
        # that holds it is read at the kill, not when it was opened.
        killed_ws_ports = set()

        def kill_loop():
            while not stop.wait(KILL_EVERY):
                workers = proxy.serving_workers()
                if not workers:
                    continue
                victim = random.choice(workers)
                held, _ = connections_by_pid(proxy.tls)
                _, ws_owners = connections_by_pid(proxy.plain)
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed_ws_ports.update(port for port, pid in ws_owners.items() if pid == victim)
                victims.append((victim, time.monotonic(), held.get(victim, 0)))

        for t in threads:
            t.start()
        for _ in range(WARMUP_RELOADS):
            proxy.reload()
            time.sleep(random.uniform(0.1, 0.2))
        time.sleep(2)
        result["fds_start"] = descriptors(proxy.pid)
        result["mem_start"] = memory(proxy.pid)
        killer = threading.Thread(target=kill_loop) if kills else None
        if killer:
            killer.start()
        began = time.monotonic()
        for _ in range(RELOADS):
            proxy.reload()
            time.sleep(random.uniform(0.1, 0.2))
        result["seconds"] = time.monotonic() - began
        time.sleep(1)
        stop.set()
        for t in threads + ([killer] if killer else []):
            t.join()
        wrk.send_signal(signal.SIGINT)
        out, _ = wrk.communicate(timeout=30)
        result["wrk_requests"], result["wrk_failed"], result["wrk_errors"] = parse_wrk(out)
        result["wrk_killed_conns"] = sum(held for _, _, held in victims)
        result["handshakes"] = len(handshakes)
        result["handshakes_failed"] = sum(1 for _, _, ok in handshakes if not ok)
        result["handshakes_on_kills"] = sum(
            1 for start, end, ok in handshakes
            if not ok and any(start <= at <= end + 0.05 for _, at, _ in victims))
        killed = {pid for pid, _, _ in victims}
        lost = [ws for ws in sockets if not ws.alive()]
        result["websockets"] = len(sockets)
        result["websockets_lost"] = len(lost)
        result["websockets_lost_on_kills"] = sum(
            1 for ws in lost if ws_owner[ws] in killed or ws.client_port in killed_ws_ports)
        result["kills"] = len(victims)
        result["api_ok"], result["api_refused"] = api["ok"], api["refused"]
        result["api_errors"] = dict(api_errors.most_common(3))
        for ws in sockets:
            ws.close()
        sockets = []
        time.sleep(SETTLE)
        result["fds_end"] = descriptors(proxy.pid)
        result["mem_end"] = memory(proxy.pid)
        result["processes"] = len(tree(proxy.pid))
        result["process_titles"] = [title(pid) for pid in tree(proxy.pid)]
    finally:
        stop.set()
        for ws in sockets:
            ws.close()
        if wrk and wrk.poll() is None:
            wrk.kill()
            wrk.wait()
        proxy.stop()
    return result


def main():
    work = tempfile.mkdtemp(prefix="molt-soak-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=bench.example.com", "-keyout", f"{work}/key.pem", "-out",
                    f"{work}/crt.pem"], check=True, capture_output=True)
    with open(f"{work}/bench.pem", "w") as out:
        for part in ("crt.pem", "key.pem"):
            out.write(open(f"{work}/{part}").read())
    origin, extra = free_port(), free_port()
    origins = [subprocess.Popen([os.path.join(BUILD, "tools/origin/molt-origin"), "--http",
                                 f"127.0.0.1:{port}", "--name", name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for port, name in ((origin, "o1"), (extra, "extra"))]
    results = []
    try:
        for p in origins:
            wait_http(origin if p is origins[0] else extra, p.pid)
        for kind in STORMS:
            log(f"storm {kind}: {RELOADS} reloads")
            r = storm(kind, work, origin, extra)
            log(json.dumps(r))
            results.append(r)
    finally:
        for p in origins:
            p.terminate()
            p.wait()
        subprocess.run(["rm", "-rf", work])
    report(results)


def report(results):
    def mib(kib):
        return f"{kib / 1024:.1f}"

    print("| storm | reloads | wrk requests | wrk failed (on killed workers) | handshakes | "
          "handshakes failed (in flight at a kill) | websockets lost (on killed workers) | "
          "API changes ok / refused | master fds start → end | master RSS / PSS / private MiB "
          "start → end | processes at end |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        kills = r["storm"].endswith("-kills")
        wrk_failed = (f"{r['wrk_failed']} (≤ {r['wrk_killed_conns']} held by {r['kills']} "
                      f"killed)" if kills else str(r["wrk_failed"]))
        hs_failed = (f"{r['handshakes_failed']} ({r['handshakes_on_kills']})" if kills
                     else str(r["handshakes_failed"]))
        ws_lost = (f"{r['websockets_lost']}/{r['websockets']} "
                   f"({r['websockets_lost_on_kills']})" if kills
                   else f"{r['websockets_lost']}/{r['websockets']}")
        api = (f"{r['api_ok']} / {r['api_refused']}" if r["storm"] != "nginx" else "no API")
        ms, me = r["mem_start"], r["mem_end"]
        print(f"| {r['storm']} | {RELOADS} in {r['seconds']:.0f} s | {r['wrk_requests']} | "
              f"{wrk_failed} | {r['handshakes']} | {hs_failed} | {ws_lost} | {api} | "
              f"{r['fds_start']} → {r['fds_end']} | {mib(ms['rss'])} / {mib(ms['pss'])} / "
              f"{mib(ms['private'])} → {mib(me['rss'])} / {mib(me['pss'])} / "
              f"{mib(me['private'])} | {r['processes']} |")
    for r in results:
        if r.get("api_errors"):
            print(f"\n{r['storm']}: API refusals: {json.dumps(r['api_errors'])}")
    print(f"\nwrk -t1 -c{CONNECTIONS} over HTTPS, {WEBSOCKETS} websockets, one handshake loop, a "
          f"server added or deleted every second, a reload every 100-200 ms"
          f"{', a serving worker kill -9ed every 5 s (molt-kills)' if any(r['storm'].endswith('-kills') for r in results) else ''};"
          f" baseline after {WARMUP_RELOADS} warm-up reloads, end {SETTLE:.0f} s after the storm;"
          f" {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
