# The HTTP/2 suite's environment, what a case gets as `env`: molt, one instance per group of
# frontends (each with its config), started on first use; the origins; the case's connections.
# Every process is stopped by its pid, then its group, when the run ends (Env.stop).

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

import h2support as h2
from processes import Child, pss_bytes
from py_origin import PyOrigin


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
