#!/usr/bin/env python3
# The HTTP/2 suite (issue 16): conformance.py (RFC 9113 / RFC 7541, frame by frame, its cases in
# conformance_*.py by area) and attacks.py (floods and stalls while a well-behaved client is
# served, memory bounded), run against one molt-origin and molt instances started on first use
# (docs/testing.md, "HTTP/2").
#
#   MOLT_BIN=build/molt MOLT_ORIGIN=build/tools/origin/molt-origin tests/http2/run.py [-v] [--list] [CASE-GLOB...]
#
# Prints a line per case (ok / FAIL name: why) and exits non-zero when any failed.

import system_python  # noqa: F401  (first: may run this again under Debian's python3)

import sys

import conformance  # (registers its cases, from the modules it lists)
import attacks  # noqa: F401  (registers its cases)
import harness

if __name__ == "__main__":
    sys.exit(harness.main(modules=conformance.MODULES + ["attacks"]))
