// The master's metrics endpoint (issue 17): counters that stay exact and monotonic through
// reloads, a binary upgrade and a worker crash; the endpoint under bad input; promtool's verdict
// on a scrape; the status page in headless Chromium; `molt ctl status` and `top`.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/http_client.hpp"
#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/net.hpp"

using namespace molt::test;
using json = nlohmann::json;

namespace {

std::string metricsConfig(std::uint16_t originPort, const std::string& apiSocket,
                          const std::string& extraGlobal = "") {
  return R"({"global": {"workers": 2, "hard_stop_after": "20s", "api_socket": ")" + apiSocket +
         R"(", "metrics": "127.0.0.1:0")" + extraGlobal + R"(},
    "frontends": [{"name": "www", "mode": "http", "bind": ["127.0.0.1:0"], "default_backend": "app"}],
    "backends": [{"name": "app", "servers": [
      {"name": "o1", "address": "127.0.0.1:)" +
         std::to_string(originPort) + R"(", "check": true},
      {"name": "gone", "address": "127.0.0.1:)" +
         std::to_string(unusedPort()) + R"(", "check": true}]}]})";
}

std::uint16_t metricsPort(Molt& molt) {
  auto m = molt.process().waitForLine(R"(metrics: listening on 127\.0\.0\.1:(\d+))", 10s);
  REQUIRE(m);
  return static_cast<std::uint16_t>(std::stoi((*m)[1]));
}

struct Answer {
  int status = 0;
  std::string head, body;
};

// One request on its own connection; `raw` is sent as is.
Answer ask(std::uint16_t port, const std::string& raw) {
  auto fd = connectTo(port);
  REQUIRE(fd);
  REQUIRE(sendAll(fd.get(), raw));
  std::string all = recvUntilEof(fd.get());
  Answer a;
  std::size_t end = all.find("\r\n\r\n");
  a.head = all.substr(0, end);
  a.body = end == std::string::npos ? "" : all.substr(end + 4);
  if (all.rfind("HTTP/1.1 ", 0) == 0) a.status = std::stoi(all.substr(9, 3));
  return a;
}

Answer get(std::uint16_t port, const std::string& path) {
  return ask(port, "GET " + path + " HTTP/1.1\r\nHost: metrics\r\n\r\n");
}

// Every sample of a scrape: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

bool isCounter(const std::string& key) {
  std::string name = key.substr(0, key.find('{'));
  return name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count") ||
         name.ends_with("_sum");
}

double value(const std::map<std::string, double>& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? -1 : it->second;
}

// Runs `command` with /bin/sh; its exit status and output.
std::pair<int, std::string> shell(const std::string& command) {
  Child child({"/bin/sh", "-c", command});
  auto status = child.waitExit(120s);
  REQUIRE(status);
  return {WIFEXITED(*status) ? WEXITSTATUS(*status) : 128, child.output()};
}

}  // namespace

TEST_CASE("metrics: counters stay exact and monotonic through 10 reloads, an upgrade and a crash",
          "[metrics][integration]") {
  Origin origin;
  TempDir run;
  std::string api = run.path() + "/api.sock";
  Molt molt(metricsConfig(origin.httpPort(), api));
  std::uint16_t mport = metricsPort(molt);
  std::map<std::string, double> previous;
  int made = 0;
  auto scrapeAndCompare = [&](const std::string& when) {
    Answer a = get(mport, "/metrics");
    REQUIRE(a.status == 200);
    auto now = samples(a.body);
    for (const auto& [key, before] : previous)
      if (isCounter(key) && now.count(key)) {
        INFO(when << ": " << key);
        CHECK(now[key] >= before);
      }
    previous = now;
    return now;
  };
  for (unsigned round = 0; round < 10; ++round) {
    unsigned generation = round + 1;
    std::uint16_t port = molt.port("www", generation);
    // A request the old generation is still serving while the reload happens (but in the
    // round where its workers are killed: it would die with them).
    bool crash = round == 6;
    molt::common::UniqueFd slow;
    if (!crash) {
      slow = connectTo(port);
      REQUIRE(
          sendAll(slow.get(), "GET /slow?ms=500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    }
    for (int i = 0; i < 3; ++i, ++made) REQUIRE(request(port, "/").status == 200);
    if (crash) {
      // The serving generation's workers die: what they counted stays counted. (An exchange is
      // counted as it ends, just after its last byte went out: wait until they all are.)
      for (int i = 0; i < 50; ++i) {
        auto now = samples(get(mport, "/metrics?scope=frontend").body);
        if (value(now, R"(molt_frontend_http_requests_total{frontend="www"})") == made) break;
        usleep(20'000);
      }
      for (pid_t pid : molt.workerPids(generation)) ::kill(pid, SIGKILL);
    }
    json answer = askApiJson(api, {{"cmd", round == 4 ? "upgrade" : "reload"}});
    INFO(answer.dump());
    REQUIRE(answer.value("ok", false));
    if (!crash) {
      Reader reader(slow.get());
      REQUIRE(readResponse(reader).status == 200);
      ++made;
    }
    for (int i = 0; i < 2; ++i, ++made)
      REQUIRE(request(molt.port("www", generation + 1), "/").status == 200);
    scrapeAndCompare("after reload " + std::to_string(round + 1));
  }
  // Once every old generation is gone, every request is counted exactly once.
  std::map<std::string, double> last;
  for (int i = 0; i < 100; ++i) {
    last = scrapeAndCompare("settling");
    if (value(last, R"(molt_generations{phase="draining"})") == 0 &&
        value(last, R"(molt_frontend_http_requests_total{frontend="www"})") == made)
      break;
    usleep(100'000);
  }
  CHECK(value(last, R"(molt_frontend_http_requests_total{frontend="www"})") == made);
  CHECK(value(last, R"(molt_frontend_http_responses_total{frontend="www",code="2xx"})") == made);
  CHECK(value(last, R"(molt_frontend_connections_total{frontend="www"})") == made);
  CHECK(value(last, R"(molt_backend_http_requests_total{backend="app"})") == made);
  CHECK(value(last, R"(molt_backend_response_seconds_count{backend="app"})") == made);
  CHECK(value(last, R"(molt_backend_response_seconds_bucket{backend="app",le="+Inf"})") == made);
  CHECK(value(last, R"(molt_reloads_total{result="ok"})") == 10);
  CHECK(value(last, R"(molt_reload_duration_seconds_count)") == 10);
  CHECK(value(last, R"(molt_generations{phase="serving"})") == 1);
  CHECK(value(last, R"(molt_workers{generation="11",phase="ready"})") == 2);
  CHECK(value(last, R"(molt_worker_memory_bytes{generation="11",slot="0",kind="pss"})") > 0);
  // A server nothing listens for goes down after its checks fail (fall: 3 by default).
  for (int i = 0; i < 150 && value(last, R"(molt_server_up{backend="app",server="gone"})") != 0;
       ++i) {
    usleep(100'000);
    last = scrapeAndCompare("checks");
  }
  CHECK(value(last, R"(molt_server_up{backend="app",server="o1"})") == 1);
  CHECK(value(last, R"(molt_server_up{backend="app",server="gone"})") == 0);
  CHECK(value(last, R"(molt_server_check_failures_total{backend="app",server="gone"})") >= 1);
  CHECK(value(last, R"(molt_server_check_failures_total{backend="app",server="o1"})") == 0);

  // Runtime changes are counted by command and result.
  REQUIRE(
      askApiJson(api, {{"cmd", "server.set"}, {"backend", "app"}, {"server", "o1"}, {"weight", 2}})
          .value("ok", false));
  REQUIRE_FALSE(
      askApiJson(api,
                 {{"cmd", "server.set"}, {"backend", "app"}, {"server", "nope"}, {"weight", 2}})
          .value("ok", true));
  auto after = scrapeAndCompare("runtime changes");
  CHECK(value(after, R"(molt_runtime_changes_total{kind="server.set",result="ok"})") == 1);
  CHECK(value(after, R"(molt_runtime_changes_total{kind="server.set",result="failed"})") == 1);

  // promtool, Prometheus's own checker, accepts the exposition.
  std::string file = run.write("scrape.txt", get(mport, "/metrics").body);
  auto [status, output] = shell("promtool check metrics < " + file + " 2>&1");
  INFO(output);
  CHECK(status == 0);
}

TEST_CASE("metrics: /healthz, scopes, and bad requests that leave the master serving",
          "[metrics][integration]") {
  Origin origin;
  TempDir run;
  Molt molt(metricsConfig(origin.httpPort(), run.path() + "/api.sock"));
  std::uint16_t mport = metricsPort(molt);

  Answer health = get(mport, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "generation 1 serving\n");
  Answer head = ask(mport, "HEAD /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.head.find("text/plain; version=0.0.4") != std::string::npos);

  // Scopes: only the families asked for; repeated or comma-separated; unknown ones refused.
  auto servers = samples(get(mport, "/metrics?scope=server").body);
  REQUIRE(!servers.empty());
  for (const auto& [key, v] : servers) CHECK(key.rfind("molt_server_", 0) == 0);
  auto two = samples(get(mport, "/metrics?scope=global&scope=frontend").body);
  CHECK(two.count("molt_serving") == 1);
  CHECK(two.count(R"(molt_frontend_http_requests_total{frontend="www"})") == 1);
  CHECK(two.count(R"(molt_server_up{backend="app",server="o1"})") == 0);
  CHECK(samples(get(mport, "/metrics?scope=backend,worker").body).count("molt_serving") == 0);
  CHECK(get(mport, "/metrics?scope=").body.empty());
  Answer unknown = get(mport, "/metrics?scope=bogus");
  CHECK(unknown.status == 400);
  CHECK(unknown.body.find("unknown scope 'bogus'") != std::string::npos);

  // What the network may send: each answered, none harming the master.
  CHECK(get(mport, "/nothing").status == 404);
  CHECK(ask(mport, "POST /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n").status == 405);
  CHECK(ask(mport, "GET /metrics HTTP/2.0\r\n\r\n").status == 505);
  const char tlsHello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";
  CHECK(ask(mport, std::string(tlsHello, sizeof tlsHello - 1)).status == 400);
  CHECK(ask(mport, "GET metrics HTTP/1.1\r\n\r\n").status == 400);
  CHECK(ask(mport, "GET /%zz HTTP/1.1\r\n\r\n").status == 400);
  CHECK(ask(mport, "GET / HTTP/1.1\r\nno colon here\r\n\r\n").status == 400);
  CHECK(ask(mport, "GET / HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n").status == 431);
  {
    // More clients than the endpoint takes at once, all silent: the surplus is closed at once,
    // and a scrape after they go is answered.
    std::vector<molt::common::UniqueFd> idle;
    for (int i = 0; i < 40; ++i) idle.push_back(connectTo(mport));
    usleep(200'000);
  }
  CHECK(get(mport, "/metrics").status == 200);
  CHECK(molt.process().running());
  CHECK(request(molt.port("www"), "/").status == 200);

  // A stopping instance says so to load balancers: 503 while no generation serves (here while
  // a slow exchange keeps the drained generation, and so the master, alive).
  auto slow = connectTo(molt.port("www"));
  REQUIRE(sendAll(slow.get(), "GET /slow?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n"));
  usleep(200'000);
  molt.process().signal(SIGTERM);
  REQUIRE_LINE(molt.process(), "graceful stop", 10s);
  Answer stopping = get(mport, "/healthz");
  CHECK(stopping.status == 503);
  CHECK(samples(get(mport, "/metrics?scope=global").body)["molt_serving"] == 0);
  REQUIRE(molt.process().waitExit(20s));
}

TEST_CASE("metrics: the status page renders in headless Chromium without console errors",
          "[metrics][integration]") {
  Origin origin;
  TempDir run;
  std::string api = run.path() + "/api.sock";
  Molt molt(metricsConfig(origin.httpPort(), api));
  std::uint16_t mport = metricsPort(molt);
  REQUIRE(askApiJson(api, {{"cmd", "reload"}}).value("ok", false));
  for (int i = 0; i < 5; ++i) REQUIRE(request(molt.port("www", 2), "/").status == 200);

  auto render = [&](const std::string& url) {
    // Virtual time lets the page's 5 s refresh run once without waiting for it.
    return shell(
        "chromium --headless=new --no-sandbox --disable-gpu --no-first-run "
        "--user-data-dir=" +
        run.path() +
        "/chromium --enable-logging=stderr --v=0 "
        "--virtual-time-budget=7000 --dump-dom '" +
        url + "' 2>" + run.path() + "/console.txt");
  };
  auto consoleLines = [&] {
    std::string all = shell("cat " + run.path() + "/console.txt").second;
    std::vector<std::string> found;
    std::istringstream in(all);
    for (std::string line; std::getline(in, line);)
      if (line.find(":CONSOLE") != std::string::npos) found.push_back(line);
    return found;
  };
  // The check itself sees errors: a page that throws is caught.
  render("data:text/html,<script>undefinedFunction()</script>");
  REQUIRE(!consoleLines().empty());

  auto [status, dom] = render("http://127.0.0.1:" + std::to_string(mport) + "/");
  REQUIRE(status == 0);
  auto console = consoleLines();
  for (const auto& line : console) UNSCOPED_INFO(line);
  CHECK(console.empty());
  CHECK(std::regex_search(dom, std::regex(R"(id="serving-generation"[^>]*>2<)")));
  CHECK(dom.find("<svg id=\"chart\"") != std::string::npos);
  CHECK(std::regex_search(dom, std::regex(R"(<td>www</td><td>5</td><td>5</td>)")));
  CHECK(dom.find("1 succeeded, 0 failed") != std::string::npos);
  // The page refreshed itself from the endpoint (its script fetched and replaced the content).
  CHECK(dom.find("id=\"refresh\">refreshed") != std::string::npos);
  // Nothing outside: no external script, style, image or font.
  Answer page = get(mport, "/");
  CHECK(!std::regex_search(page.body, std::regex(R"((src|href)="(https?:)?//)")));
}

TEST_CASE("molt ctl status and top show the serving generation and its traffic",
          "[metrics][integration]") {
  Origin origin;
  TempDir run;
  std::string api = run.path() + "/api.sock";
  Molt molt(metricsConfig(origin.httpPort(), api));
  for (int i = 0; i < 3; ++i) REQUIRE(request(molt.port("www"), "/").status == 200);
  auto [status, text] = shell(moltBinary() + " ctl -s " + api + " status");
  INFO(text);
  CHECK(status == 0);
  CHECK(text.find("serving: generation 1") != std::string::npos);
  CHECK(std::regex_search(text, std::regex(R"(\nwww +3 +3 )")));
  CHECK(std::regex_search(text, std::regex(R"(\napp +2 +\d +\d +0 +3 )")));
  auto [topStatus, frames] = shell(moltBinary() + " ctl -s " + api + " top -n 2 -d 0.2");
  CHECK(topStatus == 0);
  std::size_t first = frames.find("serving: generation 1");
  CHECK(first != std::string::npos);
  CHECK(frames.find("serving: generation 1", first + 1) != std::string::npos);
  auto [bad, usage] = shell(moltBinary() + " ctl -s " + api + " top -n 0 2>&1");
  CHECK(bad == 2);
  CHECK(usage.find("-n: a count of at least 1") != std::string::npos);
}
