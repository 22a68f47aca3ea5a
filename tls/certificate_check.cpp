#include "tls/certificate_check.hpp"

#include "tls/settings.hpp"

namespace molt::tls {
namespace {

// The PEM is served as the file kPemPath to the loader, which prefixes its messages with the
// file's name; the caller already names the field.
constexpr const char* kPemPath = "pem";
constexpr const char* kKeyPath = "pem.key";  // where the loader looks for a key the PEM lacks

std::string withoutPrefix(std::string message) {
  const std::string prefix = std::string(kPemPath) + ": ";
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return message;
}

}  // namespace

std::string checkCertificatePem(const std::string& pem) {
  bool keyMissing = false;
  common::FileSource files;
  files.read = [&](const std::string& path, std::string& error) -> std::optional<std::string> {
    if (path == kPemPath) return pem;
    keyMissing = path == kKeyPath;
    error = "not found";
    return std::nullopt;
  };
  files.list = [](const std::string&, std::string& error) {
    error = "not a directory";
    return std::optional<std::vector<std::string>>();
  };
  common::FrontendConfig frontend;
  frontend.name = "runtime certificate check";
  frontend.certificates = {kPemPath};
  auto problems = validateTls(frontend, common::TlsConfig{}, files);
  if (keyMissing) return "no private key: the PEM must hold the certificate's key";
  if (!problems.empty()) return withoutPrefix(problems.front().message);
  TlsCertificateSet set = loadCertificates(frontend.certificates, files);
  if (set.certificates.empty() || set.certificates.front().names.empty()) {
    return "the certificate has no DNS name (subjectAltName or CN) for SNI to choose it by";
  }
  return "";
}

}  // namespace molt::tls
