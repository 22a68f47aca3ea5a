"""Fleet tier benchmark (issue 18), run by bench/fleet-resumption.

Two molt instances (one worker each, TLS 1.2 session ids: tickets off, so every resumption goes
through the session cache) in front of the project's test origin, once without "fleet" and once
with it, against a redis-server of their own on loopback. One client, Python's ssl (OpenSSL):

  alternating  BENCH_HANDSHAKES handshakes, each on the other instance than the one before,
               always offering the last session: handshakes per second and the share resumed.
  lookup       (fleet only) BENCH_PAIRS times: a full handshake on A, then the same session on B
               (a local miss: B asks Redis) and on B again (a local hit): the p50/p99 of both,
               and their difference, which is what the Redis lookup adds.

Every process started here is stopped by pid.
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1]
HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "3000"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "1000"))
started = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, ready=None, **kw):
    out = subprocess.PIPE if ready else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, **kw)
    started.append(p)
    if ready:
        for line in p.stdout:
            if ready in line:
                break
    return p


def wait_port(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on {port}")


def molt_config(dir, port, origin, redis, fleet):
    fleet_text = f'"fleet": {{"redis": "127.0.0.1:{redis}", "prefix": "bench:"}},' if fleet else ""
    return f"""{{"global": {{"workers": 1}},
      "tls": {{"session_cache": "16MB", "tickets": false}}, {fleet_text}
      "frontends": [{{"name": "f", "mode": "http", "default_backend": "b",
        "bind": [{{"address": "127.0.0.1:{port}", "tls": true}}],
        "certificates": ["{dir}/site.pem"]}}],
      "backends": [{{"name": "b", "servers": [{{"name": "o", "address": "127.0.0.1:{origin}"}}]}}]}}"""


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def handshake(ctx, port, session=None):
    t0 = time.perf_counter()
    raw = socket.create_connection(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="www.example.com", session=session)
    elapsed = time.perf_counter() - t0
    reused, session = s.session_reused, s.session
    s.close()
    return elapsed, reused, session


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def run_mode(dir, origin, redis, fleet):
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        path = f"{dir}/{'fleet' if fleet else 'alone'}-{i}.json"
        with open(path, "w") as f:
            f.write(molt_config(dir, port, origin, redis, fleet))
        start([f"{BUILD}/molt", "-f", path])
        wait_port(port)
    time.sleep(1.5)  # the masters' and workers' Redis links, the ring read
    ctx = client_context()
    session, resumed = None, 0
    t0 = time.perf_counter()
    for i in range(HANDSHAKES):
        _, reused, session = handshake(ctx, ports[i % 2], session)
        resumed += reused
    rate = HANDSHAKES / (time.perf_counter() - t0)
    result = {"rate": rate, "resumed": resumed / HANDSHAKES}
    if fleet:
        remote, local, misses = [], [], 0
        for _ in range(PAIRS):
            _, _, session = handshake(ctx, ports[0])
            time.sleep(0.002)  # the SET reaches Redis after the handshake
            t, reused, _ = handshake(ctx, ports[1], session)
            misses += not reused
            remote.append(t)
            t, reused, _ = handshake(ctx, ports[1], session)
            local.append(t)
        result.update(remote=remote, local=local, misses=misses)
    for p in started[-2:]:
        p.terminate()
        p.wait(10)
    return result


def main():
    dir = tempfile.mkdtemp(prefix="molt-bench-fleet-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=www.example.com", "-keyout", f"{dir}/key.pem",
                    "-out", f"{dir}/cert.pem"], check=True, capture_output=True)
    with open(f"{dir}/site.pem", "w") as out:
        out.write(open(f"{dir}/key.pem").read() + open(f"{dir}/cert.pem").read())
    origin_port, redis_port = free_port(), free_port()
    start([f"{BUILD}/tools/origin/molt-origin", "--http", f"127.0.0.1:{origin_port}", "--quiet"])
    start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no"], ready="Ready to accept connections")
    wait_port(origin_port)
    alone = run_mode(dir, origin_port, redis_port, False)
    fleet = run_mode(dir, origin_port, redis_port, True)
    ms = lambda v: f"{v * 1000:.2f} ms"
    print(f"fleet-resumption: {HANDSHAKES} handshakes alternating between two instances "
          f"(TLS 1.2 session ids, one client)")
    print("| | handshakes/s | resumed |")
    print("|---|---:|---:|")
    print(f"| without fleet | {alone['rate']:,.0f} | {alone['resumed']:.1%} |")
    print(f"| with fleet (Redis) | {fleet['rate']:,.0f} | {fleet['resumed']:.1%} |")
    print(f"| ratio | {fleet['rate'] / alone['rate']:.2f} x | |")
    r, l = fleet["remote"], fleet["local"]
    print(f"\nlookup: {PAIRS} sessions made on A, resumed on B twice "
          f"({fleet['misses']} of the first not resumed)")
    print("| resumption on B | p50 | p99 |")
    print("|---|---:|---:|")
    print(f"| first (local miss, Redis GET) | {ms(percentile(r, .5))} | {ms(percentile(r, .99))} |")
    print(f"| second (local hit) | {ms(percentile(l, .5))} | {ms(percentile(l, .99))} |")
    print(f"| added by the Redis lookup | {ms(percentile(r, .5) - percentile(l, .5))} | "
          f"{ms(percentile(r, .99) - percentile(l, .99))} |")


try:
    main()
finally:
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
