#include "worker/tls/context.hpp"

#include <catch2/catch.hpp>

#include "tests/worker/tls/test_support.hpp"

using Catch::Matchers::StartsWith;
using molt::worker::TlsContext;
using molt::worker::TlsEngine;
using molt::worker::TlsOptions;
using molt::worker::TlsPhase;
using molt::worker::test::establish;
using molt::worker::test::peerCommonName;
using molt::worker::test::TestClient;
using molt::worker::test::TestFiles;
using molt::worker::test::TestPki;
using molt::worker::test::testPool;

namespace {

// Three sites: a default (first), an exact name and a wildcard.
struct Sites {
  TestPki pki;
  TestFiles files;
  std::vector<std::string> paths{"/certs/default.pem", "/certs/www.pem", "/certs/wildcard.pem"};
  Sites()
      : files({{"/certs/default.pem", pki.issue({"default.test"}, "default").combined()},
               {"/certs/www.pem", pki.issue({"www.example.com"}, "www").combined()},
               {"/certs/wildcard.pem", pki.issue({"*.example.com"}, "wildcard").combined()}}) {}

  std::shared_ptr<TlsContext> context(const TlsOptions& options = {}) {
    std::string error;
    auto context = TlsContext::load(paths, files.source(), options, error);
    INFO(error);
    REQUIRE(context);
    return context;
  }
};

Sites& sites() {
  static Sites instance;
  return instance;
}

// The CN of the certificate a client offering `sni` is shown.
std::string servedFor(const std::shared_ptr<TlsContext>& context, std::string_view sni) {
  TestClient client(sites().pki);
  auto engine = client.connect(sni);
  TlsEngine server(testPool(), context);
  REQUIRE(establish(*engine, server));
  return peerCommonName(*engine);
}

}  // namespace

TEST_CASE("SNI picks the exact name, then a wildcard, then the first certificate", "[tls][sni]") {
  auto context = sites().context();
  CHECK(servedFor(context, "www.example.com") == "www");
  CHECK(servedFor(context, "WWW.Example.COM.") == "www");
  CHECK(servedFor(context, "api.example.com") == "wildcard");
  CHECK(servedFor(context, "a.b.example.com") == "default");  // a wildcard covers one label
  CHECK(servedFor(context, "example.com") == "default");
  CHECK(servedFor(context, "unknown.org") == "default");
  CHECK(servedFor(context, "") == "default");
  CHECK(context->certificateFor("default.test") == 0);
  CHECK(context->certificateFor("www.example.com") == 1);
  CHECK(context->certificateFor("x.example.com") == 2);
}

TEST_CASE("the certificate file's chain lets a client verify the name it asked for", "[tls][sni]") {
  auto context = sites().context();
  TestClient client(sites().pki);
  auto engine = client.connect("www.example.com", nullptr, "", true);
  TlsEngine server(testPool(), context);
  REQUIRE(establish(*engine, server));
  CHECK(SSL_get_verify_result(engine->ssl()) == X509_V_OK);
  CHECK(server.serverName() == "www.example.com");
}

TEST_CASE("ALPN selects http/1.1 when offered and stays silent otherwise", "[tls][alpn]") {
  auto context = sites().context();
  TestClient client(sites().pki);
  {
    auto engine = client.connect("", nullptr, std::string_view("\x02h2\x08http/1.1", 12));
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
    CHECK(server.alpn() == "http/1.1");
    CHECK(engine->alpn() == "http/1.1");
  }
  {
    auto engine = client.connect("", nullptr, std::string_view("\x02h2", 3));
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
    CHECK(server.alpn() == "");
  }
  TlsOptions tcp;
  tcp.alpn = false;
  auto tcpContext = sites().context(tcp);
  auto engine = client.connect("", nullptr, std::string_view("\x08http/1.1", 9));
  TlsEngine server(testPool(), tcpContext);
  REQUIRE(establish(*engine, server));
  CHECK(server.alpn() == "");
}

TEST_CASE("TLS 1.2 and 1.3 are served; min_version TLSv1.3 turns a TLS 1.2 client away",
          "[tls][versions]") {
  auto context = sites().context();
  TestClient old(sites().pki, TLS1_2_VERSION);
  {
    auto engine = old.connect();
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
    CHECK(server.version() == "TLSv1.2");
  }
  TestClient modern(sites().pki);
  {
    auto engine = modern.connect();
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
    CHECK(server.version() == "TLSv1.3");
  }
  TlsOptions strict;
  strict.minVersion = "TLSv1.3";
  auto strictContext = sites().context(strict);
  auto engine = old.connect();
  TlsEngine server(testPool(), strictContext);
  CHECK_FALSE(establish(*engine, server));
  CHECK(server.phase() == TlsPhase::Failed);
  CHECK_THAT(server.error(), StartsWith("error:"));
}

TEST_CASE("a refused setting is named by its config key with OpenSSL's reason", "[tls]") {
  TlsOptions options;
  options.ciphersuites = "TLS_NOPE";
  std::string error;
  CHECK_FALSE(TlsContext::load(sites().paths, sites().files.source(), options, error));
  CHECK_THAT(error, StartsWith("tls.ciphersuites: error:"));
  options = {};
  options.minVersion = "SSLv3";
  CHECK_FALSE(TlsContext::load(sites().paths, sites().files.source(), options, error));
  CHECK(error == "tls.min_version: \"SSLv3\" is not TLSv1.2 or TLSv1.3");
  CHECK_FALSE(TlsContext::load({"/nowhere.pem"}, sites().files.source(), {}, error));
  CHECK(error == "/nowhere.pem: cannot read: not in the handover bundle");
}

TEST_CASE("an RSA certificate serves TLS 1.2 and 1.3 clients", "[tls]") {
  TestPki pki;
  TestFiles files({{"/rsa.pem", pki.issue({"rsa.test"}, "rsa", true).combined()}});
  std::string error;
  auto context = TlsContext::load({"/rsa.pem"}, files.source(), {}, error);
  REQUIRE(context);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    TestClient client(pki, version);
    auto engine = client.connect("rsa.test", nullptr, "", true);
    TlsEngine server(testPool(), context);
    REQUIRE(establish(*engine, server));
  }
}
