#!/usr/bin/env python3
# HTTP/2 conformance of molt's client side, frame by frame (issue 16), in the areas h2spec covers:
# the connection preface, frame sizes, each frame type's rules, stream states, flow control, HPACK,
# SETTINGS, and the HTTP semantics of RFC 9113 §8 (a malformed request is never forwarded); then
# requests end to end through molt to the test origins. Each case's docstring cites the section
# it checks. Run: tests/http2/run.py [CASE-GLOB...] (or this file directly).
#
# The cases are in one module per area, listed in MODULES in the order they run; what they share
# is in conformance_helpers.py.

import system_python  # noqa: F401  (first: may run this again under Debian's python3)

import importlib
import sys

MODULES = [
    "conformance_preface_frames",  # connection preface (§3.4), frame format and size (§4)
    "conformance_hpack",           # HPACK (§4.3, RFC 7541)
    "conformance_stream_states",   # stream states and identifiers (§5.1)
    "conformance_stream_frames",   # DATA, HEADERS, PRIORITY, RST_STREAM (§6.1-6.4)
    "conformance_control_frames",  # SETTINGS, PUSH_PROMISE, PING, GOAWAY (§6.5-6.8)
    "conformance_flow",            # WINDOW_UPDATE and flow control (§6.9)
    "conformance_http_semantics",  # malformed requests (§8)
    "conformance_end_to_end",      # requests end to end through molt
    "conformance_options",         # ALPN, the http2 options, drain
]

for _name in MODULES:
    importlib.import_module(_name)  # registers its cases

if __name__ == "__main__":
    import harness
    sys.exit(harness.main(modules=MODULES))
