# HTTP/2 test support: frames built byte by byte, HPACK blocks, and a client connection that sends
# exactly what a case tells it (well-formed or not) and records everything molt answers.
#
# Frames molt sends are parsed with hyperframe and header blocks decoded with hpack (Debian's
# python3-hyperframe and python3-hpack); frames a case sends are built here, so that a case can
# send what no library would (bad lengths, reserved bits, undecodable header blocks).
#
# The cases import everything from here; it lives in
#   h2frames.py   frame types, flags, error codes, settings, time bounds, Failure; frames and HPACK
#   h2conn.py     Stream and Conn, the client connection
#   h2expect.py   Conn's expectations: connection error, stream error, alive (RFC 9113 §5.4)
#   h2clients.py  one request on its own connection (python3-h2, HTTP/1.1), /size/N's body

from h2frames import *  # noqa: F401,F403
from h2conn import *  # noqa: F401,F403
from h2expect import *  # noqa: F401,F403
from h2clients import *  # noqa: F401,F403
