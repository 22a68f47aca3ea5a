#!/usr/bin/python3
"""bench/metrics: what metrics cost molt (issue 17). Standard library only; run by bench/metrics,
which installs and builds what it needs and sets MOLT_BIN, BASE_BIN, ORIGIN_BIN and HAPROXY.

1. The hot path. The same load (h2load --h1: BENCH_REQUESTS requests over 10 keep-alive
   connections, 1 KiB answers from molt-origin; one worker, access log to /dev/null) against
     before    molt built from BENCH_BASELINE (the commit before workers counted anything),
     off       molt now, no metrics endpoint (workers count all the same: the counters are not
               optional, `molt ctl status` reads them),
     scraped   molt now with global.metrics, scraped every second during the load.
   Rounds alternate the variants (BENCH_ROUNDS, 3); per variant the median of requests per second
   and of CPU microseconds per request (user + system of the whole process tree, /proc/PID/stat).
   Then, under valgrind's callgrind (instruction counts are stable on a shared machine): the
   worker's instructions per request, `before` against `off`, counted between callgrind_control
   -z and -d around BENCH_CG_REQUESTS requests (the zygote and workers run under callgrind
   through MOLT_WORKER_EXE, the master natively).
2. A scrape of the seed case: one backend of 100000 servers from a template, health-checked and
   disabled (the seed's `server-template ... check disabled`), plus one real server; two
   workers. Per scope: bytes, milliseconds (median of 5, curl's time_total) and the master's
   CPU milliseconds per scrape; `promtool check metrics` on the full scrape. HAProxy's own
   Prometheus exporter on the same servers, for comparison.
Prints markdown tables."""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds, tree  # noqa: E402

MOLT, BASE, ORIGIN = os.environ["MOLT_BIN"], os.environ["BASE_BIN"], os.environ["ORIGIN_BIN"]
HAPROXY = os.environ.get("HAPROXY", "")
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200000"))
CG_REQUESTS = int(os.environ.get("BENCH_CG_REQUESTS", "5000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SERVERS = int(os.environ.get("BENCH_SERVERS", "100000"))
WORK = tempfile.mkdtemp(prefix="molt-bench-metrics-")
STARTED = []  # (Popen) stopped by pid at exit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, **kw):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    STARTED.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_http(port, path="/", limit=300):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing answers on 127.0.0.1:{port}{path}")


def molt_config(port, origin, api, metrics=None, templates=0, workers=1):
    servers = [{"name": "real", "address": f"127.0.0.1:{origin}"}]
    if templates:
        servers.append({"template": "server", "from": 1, "to": templates,
                        "address": "127.0.0.1:1024", "check": True, "disabled": True})
    glob = {"workers": workers, "api_socket": api}
    if metrics:
        glob["metrics"] = f"127.0.0.1:{metrics}"
    return {"global": glob,
            "frontends": [{"name": "fe", "mode": "http", "bind": [f"127.0.0.1:{port}"],
                           "default_backend": "be"}],
            "backends": [{"name": "be", "servers": servers}]}


def run_molt(binary, config, launcher=()):
    path = os.path.join(WORK, f"molt-{len(STARTED)}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return start([*launcher, binary, "-f", path])


def h2load(port, n, connections=10):
    out = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", str(connections), "-t", "1",
                          f"http://127.0.0.1:{port}/size/1024"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m or not done or int(done.group(2)) != n:
        raise SystemExit("bench: h2load did not get every answer:\n" + out)
    return float(m.group(1))


def api(path, request):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def worker_pids(api_path):
    proc = api(api_path, {"cmd": "proc"})
    return [w["pid"] for g in proc["generations"] for w in g["workers"]]


def hot_path():
    origin_port = free_port()
    origin = start([ORIGIN, "--http", f"127.0.0.1:{origin_port}", "--quiet"])
    wait_http(origin_port)
    variants = ["before", "off", "scraped"]
    results = {v: {"rps": [], "cpu": []} for v in variants}
    for _ in range(ROUNDS):
        for variant in variants:
            port, mport = free_port(), free_port()
            apipath = os.path.join(WORK, f"api-{len(STARTED)}.sock")
            binary = BASE if variant == "before" else MOLT
            p = run_molt(binary, molt_config(port, origin_port, apipath,
                                             mport if variant == "scraped" else None))
            wait_http(port)
            h2load(port, 2000)  # warm-up: pooled server connections, allocator
            stop_scraper = threading.Event()

            def scrape():
                while not stop_scraper.wait(1.0):
                    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics") as r:
                        r.read()

            scraper = threading.Thread(target=scrape)
            if variant == "scraped":
                scraper.start()
            pids = tree(p.pid)
            cpu0 = cpu_seconds(pids)
            rps = h2load(port, REQUESTS)
            cpu1 = cpu_seconds(pids)
            if variant == "scraped":
                stop_scraper.set()
                scraper.join()
            results[variant]["rps"].append(rps)
            results[variant]["cpu"].append((cpu1 - cpu0) / REQUESTS * 1e6)
            stop(p)
    # Instructions per request under callgrind: the worker, zeroed after a warm-up, dumped after
    # CG_REQUESTS more.
    instructions = {}
    for variant in ["before", "off"]:
        port = free_port()
        apipath = os.path.join(WORK, f"api-cg-{variant}.sock")
        out = os.path.join(WORK, f"cg-{variant}")
        os.makedirs(out)
        binary = BASE if variant == "before" else MOLT
        # The master itself cannot run under valgrind 3.19 (no pidfd_open): it runs natively and
        # execs its zygote through a wrapper that starts it under callgrind; workers are forked
        # from the zygote, under callgrind too.
        wrapper = os.path.join(out, "molt-under-callgrind")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec valgrind --tool=callgrind --trace-children=yes '
                    f'--callgrind-out-file={out}/cg.%p {binary} "$@"\n')
        os.chmod(wrapper, 0o755)
        p = run_molt(binary, molt_config(port, origin_port, apipath),
                     launcher=["env", f"MOLT_WORKER_EXE={wrapper}"])
        wait_http(port, limit=600)
        h2load(port, 500)
        worker = worker_pids(apipath)[0]
        subprocess.run(["callgrind_control", "-z", str(worker)], check=True,
                       capture_output=True)
        h2load(port, CG_REQUESTS)
        subprocess.run(["callgrind_control", "-d", str(worker)], check=True,
                       capture_output=True)
        dumps = sorted((f for f in os.listdir(out) if f.startswith(f"cg.{worker}.")),
                       key=lambda f: os.path.getmtime(os.path.join(out, f)))
        with open(os.path.join(out, dumps[-1])) as f:
            total = next(int(line.split()[1]) for line in f
                         if line.startswith("summary:") or line.startswith("totals:"))
        instructions[variant] = total / CG_REQUESTS
        stop(p)
    stop(origin)

    print(f"### Hot path: {REQUESTS} requests (h2load --h1 -c 10), median of {ROUNDS} rounds\n")
    print("| molt | req/s | CPU µs/request | instructions/request (callgrind, worker) |")
    print("|---|---:|---:|---:|")
    names = {"before": f"before metrics ({os.environ.get('BENCH_BASELINE', '?')})",
             "off": "now, endpoint off", "scraped": "now, endpoint on, scraped every 1 s"}
    for v in variants:
        ins = f"{instructions[v]:,.0f}" if v in instructions else "—"
        print(f"| {names[v]} | {statistics.median(results[v]['rps']):,.0f} | "
              f"{statistics.median(results[v]['cpu']):.2f} | {ins} |")
    before, now = instructions["before"], instructions["off"]
    print(f"\nInstructions per request, now / before: {now / before:.4f} "
          f"({(now - before) / before * 100:+.2f} %); CPU per request, scraped / before: "
          f"{statistics.median(results['scraped']['cpu']) / statistics.median(results['before']['cpu']):.3f}; "
          f"req/s, scraped / before: "
          f"{statistics.median(results['scraped']['rps']) / statistics.median(results['before']['rps']):.3f}\n")


def timed_get(url):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return len(body), (time.monotonic() - t0) * 1000


def measure_scrape(url, pid):
    """One warm-up scrape, then 5: (series, bytes, median ms, exporter CPU ms per scrape)."""
    timed_get(url)
    sizes, times = [], []
    cpu0 = cpu_seconds([pid])
    for _ in range(5):
        size, ms = timed_get(url)
        sizes.append(size)
        times.append(ms)
    cpu = (cpu_seconds([pid]) - cpu0) / 5 * 1000
    with urllib.request.urlopen(url, timeout=120) as r:
        series = sum(1 for line in r.read().decode().splitlines()
                     if line and not line.startswith("#"))
    return series, sizes[-1], statistics.median(times), cpu


def scrape_cost():
    origin_port = free_port()
    origin = start([ORIGIN, "--http", f"127.0.0.1:{origin_port}", "--quiet"])
    wait_http(origin_port)
    port, mport = free_port(), free_port()
    p = run_molt(MOLT, molt_config(port, origin_port, os.path.join(WORK, "api-seed.sock"), mport,
                                   templates=SERVERS, workers=2))
    wait_http(port)
    wait_http(mport, "/healthz")
    rows = []
    for scope in ["", "global,worker,frontend,backend", "server", "global"]:
        url = f"http://127.0.0.1:{mport}/metrics" + (f"?scope={scope}" if scope else "")
        rows.append(("molt", scope or "(all)", *measure_scrape(url, p.pid)))
    # Prometheus's own checker on the whole scrape.
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=120) as r:
        check = subprocess.run(["promtool", "check", "metrics"], input=r.read(),
                               capture_output=True)
    verdict = ("passes" if check.returncode == 0 else
               "FAILS: " + (check.stdout + check.stderr).decode(errors="replace")[:500])
    stop(p)
    if HAPROXY:
        port, sport = free_port(), free_port()
        cfg = os.path.join(WORK, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"""global
  nbthread 2
  maxconn 4000
  ulimit-n 20000
  no strict-limits
  log stderr local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:{port}
  default_backend be
frontend stats
  bind 127.0.0.1:{sport}
  http-request use-service prometheus-exporter if {{ path /metrics }}
backend be
  server real 127.0.0.1:{origin_port}
  server-template server 1-{SERVERS} 127.0.0.1:1024 check disabled
""")
        h = start([HAPROXY, "-f", cfg, "-db"])
        wait_http(port)
        rows.append(("HAProxy (prometheus-exporter)", "(all)",
                     *measure_scrape(f"http://127.0.0.1:{sport}/metrics", h.pid)))
        stop(h)
    stop(origin)
    print(f"### A scrape of the seed case: {SERVERS} checked, disabled template servers + 1\n")
    print("| exporter | scope | series | bytes | ms (median of 5) | exporter CPU ms/scrape |")
    print("|---|---|---:|---:|---:|---:|")
    for name, scope, series, size, ms, cpu in rows:
        print(f"| {name} | {scope} | {series:,} | {size:,} | {ms:.1f} | {cpu:.1f} |")
    print(f"\n`promtool check metrics` on molt's full scrape: {verdict}\n")


def main():
    try:
        if os.environ.get("BENCH_PARTS", "hot scrape").find("hot") >= 0:
            hot_path()
        if os.environ.get("BENCH_PARTS", "hot scrape").find("scrape") >= 0:
            scrape_cost()
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
