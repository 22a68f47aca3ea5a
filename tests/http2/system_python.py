# python3-h2, python3-hyperframe and python3-hpack are Debian packages, installed for Debian's
# /usr/bin/python3. Imported first by each entry point: under another interpreter (a pyenv shim
# ahead on PATH), the script runs again with Debian's.
import os
import sys

try:
    import hpack  # noqa: F401
    import hyperframe  # noqa: F401
except ImportError:
    SYSTEM = "/usr/bin/python3"
    if os.path.exists(SYSTEM) and not os.environ.get("MOLT_H2_REEXEC"):
        os.environ["MOLT_H2_REEXEC"] = "1"
        os.execv(SYSTEM, [SYSTEM] + sys.argv)
    sys.exit("tests/http2 needs python3-hpack and python3-hyperframe (scripts/setup installs "
             "them)")
