// End-to-end: who may use the runtime API, and with whose permissions it reads files (issue 13).
#include "tests/integration/trust_support.hpp"

using namespace molt::test;
using namespace molt::test::trust;
using nlohmann::json;

TEST_CASE("the API admits the workers' user only when listed, and reads files as its client",
          "[trust][integration][api]") {
  Origin origin;
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  REQUIRE(makeCertificate(dir.path() + "/site.pem", "site.example.com"));
  REQUIRE(makeCertificate(dir.path() + "/open.pem", "open.example.com"));
  REQUIRE(makeCertificate(dir.path() + "/secret.pem", "secret.example.com"));
  chmod((dir.path() + "/open.pem").c_str(), 0644);
  chmod((dir.path() + "/secret.pem").c_str(), 0600);  // root's alone
  std::string base = tlsConfig(dir, origin.httpPort(), "1MB");
  std::string withUser = base;
  withUser.replace(withUser.find("\"workers\": 2"), 12, "\"workers\": 2, \"user\": \"nobody\"");
  Molt molt(withUser);
  std::string socket = dir.path() + "/api.sock";
  REQUIRE_LINE(molt.process(), "api: listening on", 10s);
  chmod(socket.c_str(), 0666);  // the uid check must hold even with the file mode open
  // Before the fix the workers' user (here nobody) was admitted by default: a compromised worker
  // could cert.set any path and have the root master read it.
  json refused = askAsNobody(socket, {{"cmd", "proc"}});
  INFO(refused.dump());
  REQUIRE(refused["ok"] == false);
  REQUIRE(refused["error"].get<std::string>().find("permission denied for uid 65534") == 0);

  std::string listed = withUser;
  listed.replace(listed.find("\"user\": \"nobody\""), 16,
                 "\"user\": \"nobody\", \"api_users\": [\"nobody\"]");
  molt.rewriteConfig(listed);
  REQUIRE(askApi(socket, R"({"cmd": "reload"})")["ok"] == true);
  chmod(socket.c_str(), 0666);
  json admitted = askAsNobody(socket, {{"cmd", "proc"}});
  REQUIRE(admitted["ok"] == true);
  // A listed user still reads only what it could read itself.
  json secret = askAsNobody(
      socket, {{"cmd", "cert.set"}, {"frontend", "tls"}, {"path", dir.path() + "/secret.pem"}});
  INFO(secret.dump());
  REQUIRE(secret["ok"] == false);
  REQUIRE(secret["error"].get<std::string>().find("Permission denied") != std::string::npos);
  json open = askAsNobody(
      socket, {{"cmd", "cert.set"}, {"frontend", "tls"}, {"path", dir.path() + "/open.pem"}});
  INFO(open.dump());
  REQUIRE(open["ok"] == true);
  // Root reads what root may.
  REQUIRE(askApiJson(socket, {{"cmd", "cert.set"},
                              {"frontend", "tls"},
                              {"path", dir.path() + "/secret.pem"}})["ok"] == true);
}
