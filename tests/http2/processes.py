# The HTTP/2 suite's child processes (molt-origin, molt): started in their own session (molt's
# workers inherit its process group), their output read line by line, stopped by their pid, then
# their group; and the memory (Pss) of a process tree.

import os
import re
import signal
import subprocess
import threading
import time


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
