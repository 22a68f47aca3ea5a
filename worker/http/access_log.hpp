// The access log: one line per HTTP request, to stderr, as text or JSON (global.log_format).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/uv_handle.hpp"

namespace molt::worker {

// One finished (or abandoned) request. Durations are microseconds since the request's first
// byte arrived; -1 when the step did not happen (no server connection, no response).
struct AccessRecord {
  std::string_view frontend, backend, server;  // backend/server empty when none was chosen
  std::string_view client;                     // "1.2.3.4:5678"
  std::string_view method, target;
  unsigned versionMinor = 1;
  bool http2 = false;                       // the request came on an HTTP/2 stream: "HTTP/2.0"
  int status = 0;                           // what the client was sent; 0 when nothing was
  std::uint64_t bytesIn = 0, bytesOut = 0;  // request bytes read, response bytes written
  std::int64_t headUs = -1, connectUs = -1, responseUs = -1, totalUs = -1;
  bool reused = false;           // the server connection came from the pool
  std::string_view termination;  // why the exchange ended early; empty when it completed
  std::string_view tlsVersion;   // "TLSv1.3"; empty in clear
  bool resumed = false;          // the TLS handshake resumed a session
  unsigned generation = 0;       // the worker's
};

// `access fe=www be=bk_1 srv=s1 client=1.2.3.4:5678 "GET /x HTTP/1.1" 200 in=78 out=1180
// head=0.041ms connect=0.000ms(pool) response=0.310ms total=0.402ms` (see docs/http.md).
std::string formatAccessText(const AccessRecord& record);
// The same, appended to `line` (no allocation once `line` has grown).
void appendAccessText(const AccessRecord& record, std::string& line);
// One JSON object with the same facts (see docs/http.md).
std::string formatAccessJson(const AccessRecord& record);
// A worker's access log. Lines are collected and written to stderr in batches of whole lines,
// each batch one write(2) of at most kBatchBytes (atomic on a pipe shared with other processes),
// flushed before the loop next waits for events: at tens of thousands of requests a second, a
// write per line would be a good part of the proxy's system calls.
class AccessLog {
 public:
  static constexpr std::size_t kBatchBytes = 4096;  // PIPE_BUF

  explicit AccessLog(uv_loop_t* loop);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // `role` as common::log prints it ("worker gen 3 slot 1"): text lines carry the same prefix
  // as every other log line.
  // `format`: global.log_format; `generation`: the worker's, stamped on every record.
  void configure(common::LogFormat format, unsigned generation);
  // One line, in the frontend's access_log.format if it has one.
  void write(AccessRecord& record, std::optional<common::LogFormat> frontendFormat);
  // Writes whatever is pending now (the worker calls it before it exits).
  void flush() noexcept;

 private:
  common::UvHandle<uv_prepare_t> prepare_;
  common::LogFormat format_ = common::LogFormat::Text;
  unsigned generation_ = 0;
  std::string pending_;  // whole lines not written yet
  std::string carry_;    // the line that starts the next batch
};

}  // namespace molt::worker
