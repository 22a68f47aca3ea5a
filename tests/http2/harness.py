# The HTTP/2 suite's harness: the case registry and the runner. What a case talks to is started
# on first use: the project's test origin, a small HTTP/1.1 origin in this process for what
# molt-origin cannot do (py_origin.py), and molt itself, one instance per group of frontends
# (environment.py); child processes and memory readings are in processes.py.
#
# Every process is started in its own session (molt's workers inherit its process group) and
# stopped by its pid, then its group, in a finally block (main, through Env.stop).

import fnmatch
import os
import sys
import threading
import time
import traceback

import h2support as h2
from environment import Env

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
