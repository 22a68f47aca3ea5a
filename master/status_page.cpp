#include "master/status_page.hpp"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "common/proc_memory.hpp"

namespace molt::master {
namespace {

using Json = nlohmann::json;

std::string html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string bytes(const Json& value) {
  return value.is_number_unsigned() ? common::formatBytes(value.get<std::uint64_t>()) : "-";
}

std::string duration(std::uint64_t seconds) {
  if (seconds >= 86400) return fmt::format("{}d {}h", seconds / 86400, seconds % 86400 / 3600);
  if (seconds >= 3600) return fmt::format("{}h {}m", seconds / 3600, seconds % 3600 / 60);
  if (seconds >= 60) return fmt::format("{}m {}s", seconds / 60, seconds % 60);
  return fmt::format("{}s", seconds);
}

std::string clock(std::int64_t unix) {
  std::time_t t = unix;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:02}:{:02}:{:02} UTC", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// Instance memory (PSS) and connections over the samples: two lines, each on its own scale.
std::string chart(const Json& samples, std::uint64_t sampleSeconds) {
  constexpr int kWidth = 720, kHeight = 160, kLeft = 8, kTop = 12;
  std::string svg = fmt::format(
      "<svg id=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"instance memory and "
      "connections over the last hour\">",
      kWidth + 2 * kLeft, kHeight + 2 * kTop + 16);
  fmt::format_to(std::back_inserter(svg),
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"frame\"/>", kLeft,
                 kTop, kWidth, kHeight);
  if (!samples.is_array() || samples.size() < 2) {
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\" class=\"note\">collecting samples (one every {} "
        "s)</text></svg>",
        kLeft + 12, kTop + kHeight / 2, sampleSeconds);
    return svg;
  }
  std::int64_t first = samples.front()[0].get<std::int64_t>();
  std::int64_t last = samples.back()[0].get<std::int64_t>();
  std::int64_t span = std::max<std::int64_t>(last - first, 1);
  std::uint64_t maxPss = 1, maxConnections = 1;
  for (const auto& s : samples) {
    maxPss = std::max(maxPss, s[1].get<std::uint64_t>());
    maxConnections = std::max(maxConnections, s[3].get<std::uint64_t>());
  }
  auto line = [&](int column, std::uint64_t max, const char* cls) {
    std::string points;
    for (const auto& s : samples) {
      double x = kLeft + static_cast<double>(s[0].get<std::int64_t>() - first) * kWidth /
                             static_cast<double>(span);
      double y = kTop + kHeight -
                 static_cast<double>(s[column].get<std::uint64_t>()) * (kHeight - 4) /
                     static_cast<double>(max);
      fmt::format_to(std::back_inserter(points), "{:.1f},{:.1f} ", x, y);
    }
    return fmt::format("<polyline class=\"{}\" points=\"{}\"/>", cls, points);
  };
  svg += line(1, maxPss, "pss");
  svg += line(3, maxConnections, "conns");
  fmt::format_to(std::back_inserter(svg),
                 "<text x=\"{}\" y=\"{}\" class=\"pss-label\">PSS (max {})</text>"
                 "<text x=\"{}\" y=\"{}\" class=\"conns-label\">connections (max {})</text>"
                 "<text x=\"{}\" y=\"{}\" class=\"note\">{} – {}</text></svg>",
                 kLeft + 4, kTop + kHeight + 14, html(common::formatBytes(maxPss)), kLeft + 220,
                 kTop + kHeight + 14, maxConnections, kLeft + 470, kTop + kHeight + 14,
                 clock(first), clock(last));
  return svg;
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2329;background:#fafbfc}
h1{font-size:20px;margin:0 0 .3em}h2{font-size:16px;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.2em 0}td,th{padding:3px 10px;border-bottom:1px solid #dde2e7;text-align:right}
th{background:#eef1f4}td:first-child,th:first-child{text-align:left}
.serving{color:#0a7b36;font-weight:600}.draining{color:#a05a00}.starting{color:#555}.bad{color:#b00020;font-weight:600}
.summary span{margin-right:1.6em}#chart{width:100%;max-width:760px;background:#fff}
.frame{fill:none;stroke:#ccd3da}.pss{fill:none;stroke:#2f6fdf;stroke-width:2}.conns{fill:none;stroke:#d9822b;stroke-width:2}
.pss-label{fill:#2f6fdf;font-size:12px}.conns-label{fill:#d9822b;font-size:12px}.note{fill:#667;font-size:12px}
footer{margin-top:2em;color:#667;font-size:12px}
)";

// Replaces <main> with the one freshly served every 5 s; says so in the footer if that fails.
constexpr const char* kScript = R"(
(function(){
  var note=document.getElementById('refresh');
  function refresh(){
    fetch(location.pathname,{cache:'no-store'}).then(function(r){
      if(!r.ok)throw new Error('HTTP '+r.status);return r.text();
    }).then(function(text){
      var next=new DOMParser().parseFromString(text,'text/html').querySelector('main');
      var current=document.querySelector('main');
      if(next&&current){current.replaceWith(next);note.textContent='refreshed '+new Date().toLocaleTimeString();}
    }).catch(function(e){note.textContent='refresh failed ('+e.message+'); retrying';});
  }
  setInterval(refresh,5000);
})();
)";

}  // namespace

std::string renderStatusPage(const Json& s) {
  std::string page;
  auto out = std::back_inserter(page);
  const Json& instance = s.at("instance");
  std::string serving =
      s.at("serving").is_null() ? "none" : std::to_string(s.at("serving").get<unsigned>());
  fmt::format_to(out,
                 "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                 "<title>molt: generation {}</title><style>{}</style></head><body><main>",
                 html(serving), kStyle);
  fmt::format_to(out,
                 "<h1>molt {} <small>(master pid {}, up {})</small></h1><p class=\"summary\">"
                 "<span>serving: <b id=\"serving-generation\" class=\"{}\">{}</b></span>"
                 "<span>connections: <b>{}</b></span><span>memory: PSS <b>{}</b>, private "
                 "<b>{}</b></span></p>",
                 html(s.at("version").get<std::string>()), s.at("pid").get<long>(),
                 duration(static_cast<std::uint64_t>(std::max<std::int64_t>(
                     0, s.at("now").get<std::int64_t>() - s.at("started").get<std::int64_t>()))),
                 s.at("serving").is_null() ? "bad" : "serving", html(serving),
                 instance.at("connections").get<std::uint64_t>(), bytes(instance.at("pss")),
                 bytes(instance.at("private")));

  page +=
      "<h2>Generations</h2><table id=\"generations\"><tr><th>generation</th><th>phase</th>"
      "<th>worker</th><th>pid</th><th>connections</th><th>PSS</th><th>private</th>"
      "<th>RSS</th><th>up</th><th>hard stop in</th></tr>";
  for (const auto& g : s.at("generations")) {
    std::string phase = g.at("phase").get<std::string>();
    std::string stop =
        g.contains("hard_stop_in_s") ? duration(g.at("hard_stop_in_s").get<std::uint64_t>()) : "";
    if (g.at("workers").empty())
      fmt::format_to(out, "<tr><td>{}</td><td class=\"{}\">{}</td><td colspan=\"8\"></td></tr>",
                     g.at("id").get<unsigned>(), html(phase), html(phase));
    for (const auto& w : g.at("workers")) {
      const Json none = Json::object();
      const Json& m = w.contains("memory") ? w.at("memory") : none;
      fmt::format_to(out,
                     "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     g.at("id").get<unsigned>(), html(phase), html(phase),
                     w.at("slot").get<unsigned>(), w.at("pid").get<long>(),
                     w.at("connections").get<std::uint64_t>(), bytes(m.value("pss", Json())),
                     bytes(m.value("private", Json())), bytes(m.value("rss", Json())),
                     duration(w.at("uptime_s").get<std::uint64_t>()), stop);
    }
  }
  page += "</table>";

  page += "<h2>Memory and connections, last hour</h2>";
  page += chart(s.at("samples"), s.at("sample_seconds").get<std::uint64_t>());

  page +=
      "<h2>Frontends</h2><table id=\"frontends\"><tr><th>frontend</th><th>connections</th>"
      "<th>requests</th><th>req/s</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"
      "<th>in</th><th>out</th><th>TLS full</th><th>TLS resumed</th></tr>";
  for (const auto& f : s.at("frontends")) {
    const Json& r = f.at("responses");
    fmt::format_to(out,
                   "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td><td>{}</td><td>{}</td>"
                   "<td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}"
                   "</td></tr>",
                   html(f.at("name").get<std::string>()), f.at("connections").get<std::uint64_t>(),
                   f.at("requests").get<std::uint64_t>(), f.at("rate").get<double>(),
                   r.at(1).get<std::uint64_t>(), r.at(2).get<std::uint64_t>(),
                   r.at(3).get<std::uint64_t>(), r.at(4).get<std::uint64_t>() ? "bad" : "",
                   r.at(4).get<std::uint64_t>(), bytes(f.at("bytes_in")), bytes(f.at("bytes_out")),
                   f.at("tls_full").get<std::uint64_t>(), f.at("tls_resumed").get<std::uint64_t>());
  }
  page += "</table>";

  page +=
      "<h2>Backends</h2><table id=\"backends\"><tr><th>backend</th><th>servers</th>"
      "<th>up</th><th>down</th><th>maint/drain</th><th>requests</th><th>req/s</th></tr>";
  for (const auto& b : s.at("backends")) {
    unsigned down = b.at("down").get<unsigned>();
    fmt::format_to(out,
                   "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td>"
                   "<td>{}</td><td>{:.1f}</td></tr>",
                   html(b.at("name").get<std::string>()), b.at("servers").get<std::uint64_t>(),
                   b.at("up").get<unsigned>(), down ? "bad" : "", down,
                   b.at("maint").get<unsigned>(), b.at("requests").get<std::uint64_t>(),
                   b.at("rate").get<double>());
  }
  page += "</table>";

  const Json& reload = s.at("reload");
  page += "<h2>Reloads</h2><p id=\"reloads\">";
  fmt::format_to(out, "{} succeeded, {} failed", reload.at("ok").get<std::uint64_t>(),
                 reload.at("failed").get<std::uint64_t>());
  if (reload.contains("last")) {
    const Json& last = reload.at("last");
    fmt::format_to(out, "; the last one <span class=\"{}\">{}</span> at {} in {:.2f} s",
                   last.at("ok").get<bool>() ? "serving" : "bad",
                   last.at("ok").get<bool>() ? "succeeded" : "failed",
                   clock(last.at("at").get<std::int64_t>()), last.at("seconds").get<double>());
  }
  page += "</p>";
  if (!reload.at("errors").empty()) {
    page += "<ul id=\"reload-errors\" class=\"bad\">";
    for (const auto& e : reload.at("errors"))
      fmt::format_to(out, "<li>{}</li>", html(e.get<std::string>()));
    page += "</ul>";
  }
  fmt::format_to(out,
                 "</main><footer>Generated at {}. <span id=\"refresh\">Refreshes every 5 s."
                 "</span> Prometheus: <a href=\"/metrics\">/metrics</a> · "
                 "<a href=\"/status.json\">/status.json</a> · <a href=\"/healthz\">/healthz</a>"
                 "</footer><script>{}</script></body></html>\n",
                 clock(s.at("now").get<std::int64_t>()), kScript);
  return page;
}

}  // namespace molt::master
