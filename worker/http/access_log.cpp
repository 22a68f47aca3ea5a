#include "worker/http/access_log.hpp"

#include "common/log.hpp"

#include <fmt/format.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>

namespace molt::worker {
namespace {

// Appends to a string without format parsing: a line is written per request, and fmt's runtime
// format strings cost more than everything else the proxy does in user space for it.
class Line {
 public:
  explicit Line(std::string& out) : out_(out) {}
  Line& operator<<(std::string_view s) {
    out_.append(s);
    return *this;
  }
  Line& operator<<(char c) {
    out_.push_back(c);
    return *this;
  }
  Line& number(std::uint64_t value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out_.append(digits, static_cast<std::size_t>(end - digits));
    return *this;
  }
  // "12.345" from microseconds.
  Line& millis(std::int64_t us) {
    number(static_cast<std::uint64_t>(us / 1000));
    char frac[4] = {'.', static_cast<char>('0' + us / 100 % 10),
                    static_cast<char>('0' + us / 10 % 10), static_cast<char>('0' + us % 10)};
    out_.append(frac, 4);
    return *this;
  }
  // Request targets are client-controlled: quotes and backslashes escaped, other bytes outside
  // printable ASCII as \u00XX, so that a line stays one line and valid JSON.
  Line& escaped(std::string_view s) {
    std::size_t plain = 0;
    while (plain < s.size() && printable(s[plain])) ++plain;
    out_.append(s.substr(0, plain));
    for (char c : s.substr(plain)) {
      auto u = static_cast<unsigned char>(c);
      if (printable(c)) {
        out_.push_back(c);
      } else if (c == '"' || c == '\\') {
        out_.push_back('\\');
        out_.push_back(c);
      } else {
        const char* hex = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', hex[u >> 4], hex[u & 15]};
        out_.append(esc, 6);
      }
    }
    return *this;
  }

 private:
  static bool printable(char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f && c != '"' && c != '\\';
  }
  std::string& out_;
};

std::string_view orDash(std::string_view s) {
  return s.empty() ? "-" : s;
}

void duration(Line& line, std::string_view key, std::int64_t us) {
  line << key;
  if (us < 0) {
    line << '-';
  } else {
    line.millis(us) << "ms";
  }
}

void jsonString(Line& line, std::string_view key, std::string_view value) {
  line << ",\"" << key << "\":\"";
  line.escaped(value) << '"';
}

void jsonDuration(Line& line, std::string_view key, std::int64_t us) {
  line << ",\"" << key << "\":";
  if (us < 0) {
    line << "null";
  } else {
    line.millis(us);
  }
}

}  // namespace

std::string formatAccessText(const AccessRecord& r) {
  std::string line;
  appendAccessText(r, line);
  return line;
}

void appendAccessText(const AccessRecord& r, std::string& out) {
  Line line(out);
  line << "access fe=" << r.frontend << " be=" << orDash(r.backend) << " srv=" << orDash(r.server)
       << " client=" << r.client << " \"";
  line.escaped(orDash(r.method)) << ' ';
  line.escaped(orDash(r.target)) << (r.http2 ? " HTTP/2.0\" " : " HTTP/1.");
  if (!r.http2) line.number(r.versionMinor) << "\" ";
  line.number(static_cast<std::uint64_t>(r.status)) << " in=";
  line.number(r.bytesIn) << " out=";
  line.number(r.bytesOut);
  duration(line, " head=", r.headUs);
  duration(line, " connect=", r.connectUs);
  if (r.reused) line << "(pool)";
  duration(line, " response=", r.responseUs);
  duration(line, " total=", r.totalUs);
  if (!r.tlsVersion.empty()) line << " tls=" << r.tlsVersion << (r.resumed ? "(resumed)" : "");
  if (!r.termination.empty()) line << " term=\"" << r.termination << '"';
}

std::string formatAccessJson(const AccessRecord& r) {
  timeval now{};
  gettimeofday(&now, nullptr);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  std::string out = fmt::format(
      "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"pid\":{},\"type\":\"access\"",
      utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
      now.tv_usec / 1000, common::log::processId());
  Line line(out);
  jsonString(line, "frontend", r.frontend);
  jsonString(line, "backend", r.backend);
  jsonString(line, "server", r.server);
  jsonString(line, "client", r.client);
  jsonString(line, "method", r.method);
  jsonString(line, "target", r.target);
  if (r.http2) {
    line << ",\"version\":\"HTTP/2.0\",\"status\":";
  } else {
    line << ",\"version\":\"HTTP/1.";
    line.number(r.versionMinor) << "\",\"status\":";
  }
  line.number(static_cast<std::uint64_t>(r.status)) << ",\"bytes_in\":";
  line.number(r.bytesIn) << ",\"bytes_out\":";
  line.number(r.bytesOut);
  jsonDuration(line, "head_ms", r.headUs);
  jsonDuration(line, "connect_ms", r.connectUs);
  jsonDuration(line, "response_ms", r.responseUs);
  jsonDuration(line, "total_ms", r.totalUs);
  line << ",\"reused\":" << (r.reused ? "true" : "false");
  jsonString(line, "termination", r.termination);
  jsonString(line, "tls", r.tlsVersion);
  line << ",\"resumed\":" << (r.resumed ? "true" : "false") << ",\"generation\":";
  line.number(r.generation);
  line << '}';
  return out;
}

AccessLog::AccessLog(uv_loop_t* loop) {
  uv_prepare_init(loop, prepare_.get());
  prepare_->data = this;
  pending_.reserve(2 * kBatchBytes);
}

AccessLog::~AccessLog() {
  flush();
}

void AccessLog::configure(common::LogFormat format, unsigned generation) {
  format_ = format;
  generation_ = generation;
}

void AccessLog::write(AccessRecord& record, std::optional<common::LogFormat> frontendFormat) {
  record.generation = generation_;
  common::LogFormat format = frontendFormat.value_or(format_);
  std::size_t before = pending_.size();
  if (format == common::LogFormat::Text) {
    common::log::appendLinePrefix(pending_);  // the same prefix as every other line
    appendAccessText(record, pending_);
  } else {
    pending_ += formatAccessJson(record);
  }
  pending_ += '\n';
  if (pending_.size() > kBatchBytes && before > 0) {
    // Write the lines before this one; this one starts the next batch.
    carry_.assign(pending_, before);
    pending_.resize(before);
    flush();
    pending_.append(carry_);
  }
  if (!uv_is_active(prepare_.base()))
    uv_prepare_start(prepare_.get(), [](uv_prepare_t* p) {
      if (auto* self = static_cast<AccessLog*>(p->data)) self->flush();
    });
}

void AccessLog::flush() noexcept {
  if (prepare_.get()) uv_prepare_stop(prepare_.get());
  std::string_view rest = pending_;
  while (!rest.empty()) {
    ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // stderr gone: the lines are lost, as common::log's would be
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  pending_.clear();
}

}  // namespace molt::worker
