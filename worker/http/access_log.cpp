#include "worker/http/access_log.hpp"

#include "common/log.hpp"

#include <fmt/format.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

namespace molt::worker {
namespace {

// Writes a line into room its caller made: a line is written per request, and both fmt's
// runtime format strings and std::string's checked appends cost more than everything else the
// proxy does in user space for it. Line never checks for space; appendLine sizes the room.
class Line {
 public:
  explicit Line(char* at) : at_(at) {}
  char* end() const { return at_; }
  Line& operator<<(std::string_view s) {
    if (s.empty()) return *this;  // its data() may be null, which memcpy must not get
    std::memcpy(at_, s.data(), s.size());
    at_ += s.size();
    return *this;
  }
  Line& operator<<(char c) {
    *at_++ = c;
    return *this;
  }
  Line& number(std::uint64_t value) {
    at_ = std::to_chars(at_, at_ + kMaxDigits, value).ptr;
    return *this;
  }
  // "12.345" from microseconds.
  Line& millis(std::int64_t us) {
    number(static_cast<std::uint64_t>(us / 1000));
    at_[0] = '.';
    at_[1] = static_cast<char>('0' + us / 100 % 10);
    at_[2] = static_cast<char>('0' + us / 10 % 10);
    at_[3] = static_cast<char>('0' + us % 10);
    at_ += 4;
    return *this;
  }
  // Request targets are client-controlled: quotes and backslashes escaped, other bytes outside
  // printable ASCII as \u00XX, so that a line stays one line and valid JSON. At most
  // kEscapedGrowth bytes per byte of `s`.
  Line& escaped(std::string_view s) {
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (printable(c)) {
        *at_++ = c;
      } else if (c == '"' || c == '\\') {
        at_[0] = '\\';
        at_[1] = c;
        at_ += 2;
      } else {
        const char* hex = "0123456789abcdef";
        const char esc[6] = {'\\', 'u', '0', '0', hex[u >> 4], hex[u & 15]};
        std::memcpy(at_, esc, 6);
        at_ += 6;
      }
    }
    return *this;
  }

  static constexpr std::size_t kMaxDigits = 20;  // of a 64-bit number
  static constexpr std::size_t kEscapedGrowth = 6;

 private:
  static bool printable(char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f && c != '"' && c != '\\';
  }
  char* at_;
};

// The fixed text of a line, numbers included, stays under this many bytes; the strings come on
// top of it.
constexpr std::size_t kLineFrame = 640;

// Appends what `write` writes, at most `bound` bytes, to `out`.
template <typename Write>
void appendLine(std::string& out, std::size_t bound, Write&& write) {
  std::size_t before = out.size();
  out.resize(before + bound);
  Line line(out.data() + before);
  write(line);
  out.resize(static_cast<std::size_t>(line.end() - out.data()));
}

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
  std::size_t bound = kLineFrame + r.frontend.size() + r.backend.size() + r.server.size() +
                      r.client.size() + r.termination.size() + r.tlsVersion.size() +
                      Line::kEscapedGrowth * (r.method.size() + r.target.size());
  appendLine(out, bound, [&r](Line& line) {
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
  });
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
  std::size_t bound =
      kLineFrame + Line::kEscapedGrowth * (r.frontend.size() + r.backend.size() + r.server.size() +
                                           r.client.size() + r.method.size() + r.target.size() +
                                           r.termination.size() + r.tlsVersion.size());
  appendLine(out, bound, [&r](Line& line) {
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
  });
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
