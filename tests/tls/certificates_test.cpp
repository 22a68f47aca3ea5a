#include "tls/certificates.hpp"

#include <openssl/pem.h>

#include <catch2/catch.hpp>

#include "tests/worker/tls/test_support.hpp"
#include "worker/tls/context.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using molt::tls::loadCertificates;
using molt::tls::TlsCertificateSet;
using molt::worker::test::TestFiles;
using molt::worker::test::TestPki;

namespace {

TestPki& pki() {
  static TestPki instance;
  return instance;
}

molt::tls::TlsCertificateSet load(const TestFiles& files, std::vector<std::string> paths) {
  return molt::tls::loadCertificates(paths, files.source());
}

}  // namespace

TEST_CASE("a PEM file with certificate, chain and key loads with its subjectAltNames",
          "[tls][certificates]") {
  auto leaf = pki().issue({"www.example.com", "Example.com"}, "www");
  TestFiles files({{"/certs/site.pem", leaf.combined()}});
  molt::tls::TlsCertificateSet set = load(files, {"/certs/site.pem"});
  REQUIRE(set.problems.empty());
  REQUIRE(set.certificates.size() == 1);
  CHECK(set.certificates[0].names == std::vector<std::string>{"www.example.com", "example.com"});
  CHECK(set.certificates[0].chain.size() == 1);
  CHECK(set.certificates[0].file == "/certs/site.pem");
  CHECK(set.filesRead == std::vector<std::string>{"/certs/site.pem"});
}

TEST_CASE("a certificate file takes its key from the .key file of the same name",
          "[tls][certificates]") {
  auto leaf = pki().issue({"a.test"}, "a");
  TestFiles files({{"/c/a.crt", leaf.cert + leaf.chain}, {"/c/a.key", leaf.key}});
  molt::tls::TlsCertificateSet set = load(files, {"/c/a.crt"});
  REQUIRE(set.problems.empty());
  REQUIRE(set.certificates.size() == 1);
  CHECK(set.filesRead == std::vector<std::string>{"/c/a.crt", "/c/a.key"});
}

TEST_CASE("a directory loads its certificate files in name order, pairing key files",
          "[tls][certificates]") {
  auto a = pki().issue({"a.test"}, "a");
  auto b = pki().issue({"b.test"}, "b");
  TestFiles files({{"/d/b.pem", b.combined()},
                   {"/d/a.crt", a.cert},
                   {"/d/a.key", a.key},
                   {"/d/README", "not a certificate"}});
  molt::tls::TlsCertificateSet set = load(files, {"/d"});
  REQUIRE(set.problems.empty());
  REQUIRE(set.certificates.size() == 2);
  CHECK(set.certificates[0].names[0] == "a.test");
  CHECK(set.certificates[1].names[0] == "b.test");
  CHECK(set.certificates[0].entry == 0);
}

TEST_CASE("a certificate without subjectAltName is named by its CN", "[tls][certificates]") {
  auto leaf = pki().issue({}, "Legacy.Example.org");
  TestFiles files({{"/c/legacy.pem", leaf.combined()}});
  molt::tls::TlsCertificateSet set = load(files, {"/c/legacy.pem"});
  REQUIRE(set.certificates.size() == 1);
  CHECK(set.certificates[0].names == std::vector<std::string>{"legacy.example.org"});
}

TEST_CASE("certificate problems name the file and the reason, all of them at once",
          "[tls][certificates]") {
  auto one = pki().issue({"one.test"}, "one");
  auto two = pki().issue({"two.test"}, "two");
  std::string corrupt = one.cert;
  corrupt[corrupt.size() / 2] = '*';
  TestFiles files({{"/c/nokey.pem", one.cert},
                   {"/c/mismatch.pem", one.cert},
                   {"/c/mismatch.key", two.key},
                   {"/c/text.pem", "hello"},
                   {"/c/corrupt.pem", corrupt + one.key},
                   {"/empty/notes.txt", "x"}});
  molt::tls::TlsCertificateSet set = load(files, {"/c/nokey.pem", "/c/mismatch.pem", "/c/text.pem",
                                                  "/c/corrupt.pem", "/c/gone.pem", "/empty"});
  CHECK(set.certificates.empty());
  REQUIRE(set.problems.size() == 6);
  CHECK(set.problems[0].entry == 0);
  CHECK(set.problems[0].message == "/c/nokey.key: cannot read: not in the handover bundle");
  CHECK_THAT(set.problems[1].message,
             StartsWith("/c/mismatch.key: the private key does not match the certificate of "
                        "/c/mismatch.pem: error:"));
  CHECK(set.problems[2].message == "/c/text.pem: no PEM certificate");
  CHECK_THAT(set.problems[3].message, StartsWith("/c/corrupt.pem: error:"));
  CHECK(set.problems[4].message == "/c/gone.pem: cannot read: not in the handover bundle");
  CHECK(set.problems[5].entry == 5);
  CHECK(set.problems[5].message ==
        "/empty: no certificate file (*.pem, *.crt, *.cer) in this directory");
}

TEST_CASE("an encrypted private key is refused without prompting for a passphrase",
          "[tls][certificates]") {
  auto leaf = pki().issue({"enc.test"}, "enc");
  molt::tls::BioPtr in(BIO_new_mem_buf(leaf.key.data(), static_cast<int>(leaf.key.size())));
  molt::tls::EvpPkeyPtr key(PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr));
  molt::tls::BioPtr out(BIO_new(BIO_s_mem()));
  char password[] = "secret";
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(out.get(), key.get(), EVP_aes_256_cbc(), password, 6,
                                        nullptr, nullptr) == 1);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  TestFiles files({{"/c/enc.pem", leaf.cert + std::string(data, size)}});
  molt::tls::TlsCertificateSet set = load(files, {"/c/enc.pem"});
  REQUIRE(set.problems.size() == 1);
  CHECK_THAT(set.problems[0].message, StartsWith("/c/enc.pem: private key: error:"));
}

TEST_CASE("molt::tls::validateTls reports certificate and settings problems by config key",
          "[tls][certificates]") {
  auto good = pki().issue({"good.test"}, "good");
  TestFiles files({{"/c/good.crt", good.cert}, {"/c/good.key", good.key}, {"/c/bad.pem", "x"}});
  molt::common::FrontendConfig frontend;
  frontend.name = "www";
  frontend.certificates = {"/c/good.crt", "/c/bad.pem"};
  molt::common::TlsConfig tls;
  std::vector<std::string> read;
  auto problems = molt::tls::validateTls(frontend, tls, files.source(), &read);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].key == "certificates[1]");
  CHECK(problems[0].message == "/c/bad.pem: no PEM certificate");
  CHECK(read == std::vector<std::string>{"/c/good.crt", "/c/good.key", "/c/bad.pem"});

  frontend.certificates = {"/c/good.crt"};
  tls.ciphersuites = "TLS_NOT_A_SUITE";
  problems = molt::tls::validateTls(frontend, tls, files.source());
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].key == "tls.ciphersuites");
  CHECK_THAT(problems[0].message, Contains("error:"));

  tls.ciphersuites.clear();
  tls.ciphers = "NO-SUCH-CIPHER";
  problems = molt::tls::validateTls(frontend, tls, files.source());
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].key == "tls.ciphers");
  CHECK_THAT(problems[0].message, Contains("no cipher match"));
}
