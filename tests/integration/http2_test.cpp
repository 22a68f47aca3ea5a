// End-to-end: HTTP/2 at the front (issue 16), with Debian's curl and h2load as the clients.
// Frame-level conformance and attacks are in tests/http2/ (python3-h2).
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/support/api_client.hpp"
#include "tests/support/molt_fixture.hpp"
#include "tests/support/tls_client.hpp"

using namespace molt::test;

namespace {

// Runs a shell command; returns its stdout ("" if it could not be started) and sets `status` to
// its exit code. No Catch assertion: client threads call it.
std::string run(const std::string& command, int* status = nullptr) {
  std::string out;
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) {
    if (status) *status = -1;
    return out;
  }
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  int rc = pclose(pipe);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

const std::string& certificate() {
  static TempDir dir;
  static std::string path = dir.path() + "/h2.pem";
  static bool made = makeCertificate(path, "www.example.com");
  REQUIRE(made);
  return path;
}

// Two frontends to one origin: "plain" (HTTP/2 by prior knowledge) and "secure" (TLS, ALPN).
std::string config(std::uint16_t origin, const std::string& plainBind = R"("127.0.0.1:0")",
                   const std::string& global = "") {
  return R"({"global": {"workers": 1)" + global + R"(},
    "frontends": [
      {"name": "plain", "mode": "http", "bind": [)" +
         plainBind + R"(], "default_backend": "be"},
      {"name": "secure", "mode": "http", "bind": [{"address": "127.0.0.1:0", "tls": true}],
       "certificates": [")" +
         certificate() + R"("], "default_backend": "be"}],
    "backends": [{"name": "be", "servers": [{"name": "o1", "address": "127.0.0.1:)" +
         std::to_string(origin) + R"("}]}]})";
}

std::string url(Molt& molt, const std::string& frontend, const std::string& path) {
  return (frontend == "secure" ? "https://127.0.0.1:" : "http://127.0.0.1:") +
         std::to_string(molt.port(frontend)) + path;
}

}  // namespace

TEST_CASE("HTTP/2 by prior knowledge in clear and by ALPN over TLS, logged as HTTP/2.0",
          "[http2]") {
  Origin origin;
  Molt molt(config(origin.httpPort()));
  std::string plain =
      run("curl -s --max-time 10 --http2-prior-knowledge -w '|%{http_version} "
          "%{http_code}' " +
          url(molt, "plain", "/"));
  CHECK(plain == "origin\n|2 200");
  std::string secure = run("curl -sk --max-time 10 --http2 -w '|%{http_version} %{http_code}' " +
                           url(molt, "secure", "/"));
  CHECK(secure == "origin\n|2 200");
  // A client that offers only http/1.1 still gets it; so does a plain HTTP/1.1 request.
  CHECK(run("curl -sk --max-time 10 --http1.1 -w '|%{http_version}' " + url(molt, "secure", "/")) ==
        "origin\n|1.1");
  CHECK(run("curl -s --max-time 10 --http1.1 -w '|%{http_version}' " + url(molt, "plain", "/")) ==
        "origin\n|1.1");
  REQUIRE_LINE(molt.process(), R"re(access fe=plain be=be srv=o1 .*"GET / HTTP/2\.0" 200)re", 5s);
  REQUIRE_LINE(molt.process(), R"re(access fe=secure be=be srv=o1 .*"GET / HTTP/2\.0" 200)re", 5s);
}

TEST_CASE("HTTP/2 bodies both ways, request fields as HTTP/1.1 sees them", "[http2]") {
  Origin origin;
  Molt molt(config(origin.httpPort()));
  TempDir dir;
  std::string upload = dir.path() + "/upload";
  {
    std::ofstream out(upload, std::ios::binary);
    for (int i = 0; i < (3 << 20) / 64; ++i)
      out << "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:" << (i % 10);
  }
  for (const char* frontend : {"plain", "secure"}) {
    INFO(frontend);
    const char* flag = std::string(frontend) == "plain" ? "--http2-prior-knowledge" : "--http2";
    // 3 MiB up (chunked to the server: no content-length from curl's -T), echoed back.
    std::string echoed = dir.path() + "/echoed";
    std::string code =
        run(std::string("curl -sk --max-time 30 ") + flag + " -T " + upload + " -o " + echoed +
            " -w '%{http_version} %{http_code}' " + url(molt, frontend, "/echo"));
    CHECK(code == "2 200");
    CHECK(std::filesystem::file_size(echoed) == std::filesystem::file_size(upload));
    CHECK(run("cmp " + upload + " " + echoed + " && echo same") == "same\n");
    // 5 MiB down through the client's flow-control window.
    CHECK(run(std::string("curl -sk --max-time 30 ") + flag +
              " -o /dev/null -w '%{http_version} %{size_download}' " +
              url(molt, frontend, "/size/5242880")) == "2 5242880");
  }
  // Split cookie fields are joined; Host comes from :authority; the proxy's own fields are added.
  std::string headers =
      run("curl -s --max-time 10 --http2-prior-knowledge -H 'cookie: a=1' "
          "-H 'cookie: b=2' " +
          url(molt, "plain", "/headers"));
  CHECK_THAT(headers, Catch::Contains("cookie: a=1; b=2"));
  CHECK_THAT(headers, Catch::Contains("host: 127.0.0.1:" + std::to_string(molt.port("plain"))));
  CHECK_THAT(headers, Catch::Contains("X-Forwarded-For: 127.0.0.1"));
  // HEAD and a status without a body.
  CHECK(run("curl -s --max-time 10 --http2-prior-knowledge -I -o /dev/null -w '%{http_code}' " +
            url(molt, "plain", "/size/1000")) == "200");
  CHECK(run("curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' " +
            url(molt, "plain", "/status/204")) == "204");
}

TEST_CASE("a bind whose alpn leaves out h2 answers the HTTP/2 preface with HTTP/1.1 400",
          "[http2]") {
  Origin origin;
  Molt molt(config(origin.httpPort(), R"({"address": "127.0.0.1:0", "alpn": ["http/1.1"]})"));
  int status = 0;
  run("curl -s --max-time 10 --http2-prior-knowledge " + url(molt, "plain", "/"), &status);
  CHECK(status != 0);
  CHECK(run("curl -s --max-time 10 " + url(molt, "plain", "/")) == "origin\n");
  // TLS still offers h2 there (it is the other frontend's bind).
  CHECK(run("curl -sk --max-time 10 --http2 -o /dev/null -w '%{http_version}' " +
            url(molt, "secure", "/")) == "2");
}

TEST_CASE("molt ctl proc counts HTTP/2 connections and their open streams", "[http2]") {
  Origin origin;
  TempDir dir;
  std::string socket = dir.path() + "/api.sock";
  Molt molt(config(origin.httpPort(), R"("127.0.0.1:0")", R"(, "api_socket": ")" + socket + "\""));
  // Four streams on one connection, each waiting 3 s for its answer.
  std::string out;
  std::thread client(
      [&] { out = run("h2load -n 4 -c 1 -m 4 " + url(molt, "plain", "/slow?ms=3000")); });
  nlohmann::json worker;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(100ms);
    nlohmann::json proc = askApi(socket, R"({"cmd": "proc"})");
    worker = proc["generations"][0]["workers"][0];
    if (worker.value("http2_streams", 0u) == 4) break;
  }
  CHECK(worker["http2_connections"] == 1);
  CHECK(worker["http2_streams"] == 4);
  client.join();
  CHECK_THAT(out, Catch::Contains("4 succeeded, 0 failed"));
  std::string table = run(moltBinary() + " ctl -s " + socket + " proc");
  CHECK_THAT(table, Catch::Contains(" H2 "));
}

TEST_CASE("HTTP/2 streams through 20 reloads: every one answered, the old workers gone",
          "[http2]") {
  Origin origin;
  // This case is about GOAWAY draining, not the max_old_generations valve: on a loaded machine
  // drains overlap more than the default 4 generations, and the valve's stop would fail streams.
  Molt molt(config(origin.httpPort(), R"("127.0.0.1:0")", R"(, "max_old_generations": 25)"));
  // curl over TLS (ALPN h2), 10 streams at a time on a connection, 50 requests per run, four
  // runs at a time, run after run: after a GOAWAY it opens its next streams on a new connection.
  // (h2load stops a client for good at its first GOAWAY, and Debian 12's curl cannot reuse an
  // h2c prior-knowledge connection, so neither serves here.)
  std::string command =
      "curl -sSk --no-progress-meter --http2 -Z --parallel-max 10 "
      "-w '%{http_code} %{http_version}\\n'";
  for (int i = 0; i < 50; ++i) command += " -o /dev/null " + url(molt, "secure", "/size/10");
  std::atomic<bool> stop{false};
  std::vector<std::string> outputs(4);
  std::vector<std::thread> clients;
  for (auto& out : outputs)
    clients.emplace_back([&] {
      while (!stop) out += run(command);
    });
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(400ms);
    molt.process().signal(SIGHUP);
  }
  stop = true;
  for (auto& client : clients) client.join();
  std::size_t answered = 0;
  std::string other;
  for (const std::string& out : outputs) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
      if (line == "200 2")
        ++answered;
      else
        other += line + "\n";
  }
  INFO("not answered with 200 over HTTP/2:\n" << other);
  CHECK(answered > 1000);
  CHECK(other.empty());
  // The streams crossed the drains: generations were replaced while connections were open.
  int drainedBusy = 0;
  std::regex busy(R"(generation \d+ draining \(replaced\): \d+ workers, [1-9]\d* connections)");
  for (const std::string& line : molt.process().lines())
    if (std::regex_search(line, busy)) ++drainedBusy;
  CHECK(drainedBusy >= 5);
  REQUIRE_LINE(molt.process(), R"(generation 21 serving)", 20s);
  REQUIRE_LINE(molt.process(), R"(generation 20 gone)", 20s);
}
