#include "ctl/top.hpp"

#include <algorithm>
#include <ctime>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "common/proc_memory.hpp"

namespace molt::ctl {
namespace {

using Json = nlohmann::json;
using Rows = std::vector<std::vector<std::string>>;

std::string bytes(const Json& value) {
  return value.is_number_unsigned() ? common::formatBytes(value.get<std::uint64_t>()) : "-";
}

std::string duration(std::uint64_t s) {
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Columns: the first left-aligned, the rest right-aligned.
void table(std::string& out, const Rows& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i == 0)
        fmt::format_to(std::back_inserter(out), "{:<{}}", row[i], width[i]);
      else
        fmt::format_to(std::back_inserter(out), "  {:>{}}", row[i], width[i]);
    }
    out += '\n';
  }
}

}  // namespace

std::string renderStatus(const Json& s, unsigned width) {
  std::string out;
  auto o = std::back_inserter(out);
  const Json& instance = s.at("instance");
  std::time_t now = s.at("now").get<std::int64_t>();
  std::tm tm{};
  gmtime_r(&now, &tm);
  fmt::format_to(o, "molt {}  pid {}  up {}  {:02}:{:02}:{:02} UTC\n",
                 s.at("version").get<std::string>(), s.at("pid").get<long>(),
                 duration(static_cast<std::uint64_t>(
                     std::max<std::int64_t>(0, now - s.at("started").get<std::int64_t>()))),
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
  fmt::format_to(
      o, "serving: {}   connections: {}   memory: PSS {}, private {}\n\n",
      s.at("serving").is_null() ? std::string("NONE") : "generation " + s.at("serving").dump(),
      instance.at("connections").get<std::uint64_t>(), bytes(instance.at("pss")),
      bytes(instance.at("private")));

  Rows workers = {{"GEN", "PHASE", "SLOT", "PID", "CONNS", "PSS", "PRIVATE", "UP", "STOP IN"}};
  for (const auto& g : s.at("generations")) {
    std::string stop =
        g.contains("hard_stop_in_s") ? duration(g.at("hard_stop_in_s").get<std::uint64_t>()) : "";
    for (const auto& w : g.at("workers")) {
      Json memory = w.value("memory", Json::object());
      workers.push_back({g.at("id").dump(), g.at("phase").get<std::string>(), w.at("slot").dump(),
                         w.at("pid").dump(), w.at("connections").dump(),
                         bytes(memory.value("pss", Json())), bytes(memory.value("private", Json())),
                         duration(w.at("uptime_s").get<std::uint64_t>()), stop});
    }
  }
  table(out, workers);
  out += '\n';

  Rows frontends = {{"FRONTEND", "CONNS", "REQUESTS", "REQ/S", "2XX", "3XX", "4XX", "5XX", "IN",
                     "OUT", "TLS", "RESUMED"}};
  for (const auto& f : s.at("frontends")) {
    const Json& r = f.at("responses");
    frontends.push_back({f.at("name").get<std::string>(), f.at("connections").dump(),
                         f.at("requests").dump(), fmt::format("{:.1f}", f.at("rate").get<double>()),
                         r.at(1).dump(), r.at(2).dump(), r.at(3).dump(), r.at(4).dump(),
                         bytes(f.at("bytes_in")), bytes(f.at("bytes_out")), f.at("tls_full").dump(),
                         f.at("tls_resumed").dump()});
  }
  table(out, frontends);
  out += '\n';

  Rows backends = {{"BACKEND", "SERVERS", "UP", "DOWN", "MAINT", "REQUESTS", "REQ/S"}};
  for (const auto& b : s.at("backends"))
    backends.push_back({b.at("name").get<std::string>(), b.at("servers").dump(), b.at("up").dump(),
                        b.at("down").dump(), b.at("maint").dump(), b.at("requests").dump(),
                        fmt::format("{:.1f}", b.at("rate").get<double>())});
  table(out, backends);

  const Json& reload = s.at("reload");
  fmt::format_to(o, "\nreloads: {} ok, {} failed", reload.at("ok").get<std::uint64_t>(),
                 reload.at("failed").get<std::uint64_t>());
  if (reload.contains("last")) {
    const Json& last = reload.at("last");
    fmt::format_to(o, "; last {} in {:.2f} s, {} ago", last.at("ok").get<bool>() ? "ok" : "FAILED",
                   last.at("seconds").get<double>(),
                   duration(static_cast<std::uint64_t>(
                       std::max<std::int64_t>(0, now - last.at("at").get<std::int64_t>()))));
  }
  out += '\n';
  for (const auto& e : reload.at("errors")) fmt::format_to(o, "  {}\n", e.get<std::string>());

  if (width == 0) return out;
  std::string cut;
  std::size_t start = 0;
  while (start < out.size()) {
    std::size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    cut += out.substr(start, std::min<std::size_t>(end - start, width));
    cut += '\n';
    start = end + 1;
  }
  return cut;
}

}  // namespace molt::ctl
