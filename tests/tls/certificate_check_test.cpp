#include "tls/certificate_check.hpp"

#include <catch2/catch.hpp>

#include "tests/worker/tls/test_support.hpp"

using molt::tls::checkCertificatePem;
using molt::worker::test::TestPki;

TEST_CASE("a runtime certificate with its chain and matching key is accepted",
          "[master][runtime_change]") {
  TestPki pki;
  TestPki::Leaf leaf = pki.issue({"shop.example.com"}, "shop");
  CHECK(checkCertificatePem(leaf.combined()) == "");
  CHECK(checkCertificatePem(leaf.key + leaf.cert + leaf.chain) == "");  // key first is fine too
  CHECK(checkCertificatePem(pki.issue({}, "cn-only.example.com", true).combined()) == "");
}

TEST_CASE("a runtime certificate without its key, or with another's, is refused",
          "[master][runtime_change]") {
  TestPki pki;
  TestPki::Leaf leaf = pki.issue({"shop.example.com"}, "shop");
  TestPki::Leaf other = pki.issue({"other.example.com"}, "other");
  CHECK(checkCertificatePem(leaf.cert + leaf.chain) ==
        "no private key: the PEM must hold the certificate's key");
  std::string mismatch = checkCertificatePem(leaf.cert + leaf.chain + other.key);
  CHECK(mismatch.find("the private key does not match the certificate") != std::string::npos);
  CHECK(checkCertificatePem(leaf.key) == "no PEM certificate");
  CHECK(checkCertificatePem("not PEM at all") == "no PEM certificate");
}
