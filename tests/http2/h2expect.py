# HTTP/2 test support: what a case expects of molt on a connection (RFC 9113 §5.4): a connection
# error (GOAWAY, then a close), a stream error (RST_STREAM), or a connection that survived. Conn
# (h2conn.py) takes these methods from Expectations; they read what it recorded.

from h2frames import NO_ERROR, Failure, as_codes, error_name, error_names


class Expectations:
    """Conn's expectations: `self` is a Conn (its streams, goaways, closed, wait, ping)."""

    # -- expectations --

    def error_goaway(self):
        for last, code, debug in self.goaways:
            if code != NO_ERROR:
                return last, code, debug
        return None

    def expect_connection_error(self, codes, timeout=None):
        """RFC 9113 §5.4.1: a GOAWAY with one of `codes`, then the connection closed. A close
        without GOAWAY passes too (as in h2spec: the GOAWAY may be lost to a TCP reset); a
        GOAWAY with another code fails. Returns what happened."""
        codes = as_codes(codes)
        self.wait(lambda: self.error_goaway() is not None or
                  (NO_ERROR in codes and self.goaways), timeout)
        goaway = self.error_goaway() or (self.goaways[0] if NO_ERROR in codes and self.goaways
                                         else None)
        if goaway is not None:
            last, code, debug = goaway
            if code not in codes:
                raise Failure("GOAWAY %s (%r), expected %s" % (error_name(code), debug[:80],
                                                               error_names(codes)))
            if not self.wait_closed(timeout):
                raise Failure("GOAWAY %s sent but the connection stayed open" % error_name(code))
            return "GOAWAY %s" % error_name(code)
        if self.closed:
            return "connection closed (%s)" % self.close_reason
        raise Failure("no GOAWAY (%s) and no close within %.0f s: %s" %
                      (error_names(codes), self.timeout if timeout is None else timeout,
                       self.describe()))

    def expect_stream_error(self, sid, codes, timeout=None, allow_http_error=False,
                            valid_request=False):
        """RFC 9113 §5.4.2: RST_STREAM on `sid` with one of `codes`. A connection error with one
        of `codes` passes too (§5.4.1 lets an endpoint treat a stream error as a connection
        error), and so does a close. With `allow_http_error` (malformed requests, §8.1.1) a 4xx
        answer on the stream passes; any other answer means the request was forwarded — unless
        `valid_request` (the error comes after a valid request, whose answer may come first)."""
        codes = as_codes(codes)
        st = self.stream(sid)
        answered_before = st.headers is not None or valid_request
        self.wait(lambda: st.reset is not None or (st.headers is not None and not answered_before)
                  or self.error_goaway() is not None, timeout)
        if st.reset is not None:
            if st.reset not in codes:
                raise Failure("stream %d reset with %s, expected %s" %
                              (sid, error_name(st.reset), error_names(codes)))
            return "RST_STREAM %s" % error_name(st.reset)
        if st.headers is not None and not answered_before:
            status = st.status
            if allow_http_error and status is not None and 400 <= status < 500:
                return "answered %d" % status
            raise Failure("stream %d answered with :status %s instead of RST_STREAM %s (the "
                          "request was accepted)" % (sid, status, error_names(codes)))
        goaway = self.error_goaway()
        if goaway is not None:
            if goaway[1] not in codes:
                raise Failure("GOAWAY %s (%r), expected RST_STREAM or GOAWAY %s" %
                              (error_name(goaway[1]), goaway[2][:80], error_names(codes)))
            return "GOAWAY %s" % error_name(goaway[1])
        if self.closed:
            return "connection closed (%s)" % self.close_reason
        raise Failure("stream %d: no RST_STREAM %s within %.0f s: %s" %
                      (sid, error_names(codes), self.timeout if timeout is None else timeout,
                       self.describe()))

    def expect_alive(self, what="the connection"):
        """The connection still works: a PING is acknowledged, with no GOAWAY."""
        if not self.ping() or self.error_goaway() is not None:
            raise Failure("%s did not survive: %s" % (what, self.describe()))
