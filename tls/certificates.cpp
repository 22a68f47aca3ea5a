#include "tls/certificates.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace molt::tls {
namespace {

// Keys are never encrypted for molt: refuse to prompt on a terminal for a passphrase.
int noPassphrase(char*, int, int, void*) {
  return 0;
}

bool endsWith(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isCertificateName(const std::string& name) {
  return endsWith(name, ".pem") || endsWith(name, ".crt") || endsWith(name, ".cer");
}

std::string lowerCase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// "dir/site.pem" -> "dir/site.key"; a name without an extension gets ".key" appended.
std::string keyFileFor(const std::string& path) {
  std::size_t slash = path.rfind('/');
  std::size_t dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + ".key";
  return path.substr(0, dot) + ".key";
}

// What one PEM text holds: its certificates in order and its first private key.
struct PemContents {
  std::vector<X509Ptr> certs;
  EvpPkeyPtr key;
};

bool isCertificateBlock(const char* name) {
  return std::strcmp(name, PEM_STRING_X509) == 0 || std::strcmp(name, PEM_STRING_X509_OLD) == 0 ||
         std::strcmp(name, PEM_STRING_X509_TRUSTED) == 0;
}

bool isKeyBlock(const char* name) {
  return std::strstr(name, "PRIVATE KEY") != nullptr;
}

// A key block is handed back to OpenSSL's own reader, which knows every key format (PKCS#8,
// traditional RSA/EC, encrypted ones, which it refuses here for want of a passphrase).
EvpPkeyPtr decodeKey(const char* name, const char* header, const unsigned char* data, long size) {
  BioPtr block(BIO_new(BIO_s_mem()));
  if (!block || PEM_write_bio(block.get(), name, header, data, size) <= 0) return nullptr;
  return EvpPkeyPtr(PEM_read_bio_PrivateKey(block.get(), nullptr, noPassphrase, nullptr));
}

// One pass over the PEM blocks (other blocks, e.g. "EC PARAMETERS", are skipped). False with
// `error` set on a malformed block.
bool readPem(const std::string& pem, PemContents& out, std::string& error) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ERR_clear_error();
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long size = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &size) != 1) break;
    if (isCertificateBlock(name)) {
      const unsigned char* in = data;
      X509Ptr cert(d2i_X509(nullptr, &in, size));
      if (!cert) error = "certificate: " + opensslError();
      out.certs.push_back(std::move(cert));
    } else if (isKeyBlock(name) && !out.key) {
      out.key = decodeKey(name, header, data, size);
      if (!out.key) error = "private key: " + opensslError();
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (!error.empty()) return false;
  }
  // The end of the text shows as "no start line"; anything else is a broken block.
  unsigned long last = ERR_peek_last_error();
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE) {
    error = opensslError();
    return false;
  }
  ERR_clear_error();
  return true;
}

std::vector<std::string> certificateNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type != GEN_DNS) continue;
    const unsigned char* data = ASN1_STRING_get0_data(name->d.dNSName);
    names.push_back(lowerCase(
        std::string(reinterpret_cast<const char*>(data), ASN1_STRING_length(name->d.dNSName))));
  }
  GENERAL_NAMES_free(sans);
  if (!names.empty()) return names;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  unsigned char* utf8 = nullptr;
  if (index >= 0) {
    int length =
        ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
    if (length > 0) names.push_back(lowerCase(std::string(reinterpret_cast<char*>(utf8), length)));
    OPENSSL_free(utf8);
  }
  return names;
}

class Loader {
 public:
  Loader(const common::FileSource& files, TlsCertificateSet& set) : files_(files), set_(set) {}

  void path(std::size_t entry, const std::string& path) {
    std::string error;
    std::optional<std::vector<std::string>> names = files_.list(path, error);
    if (!names) return file(entry, path);
    std::string dir = path.back() == '/' ? path : path + '/';
    std::size_t before = set_.certificates.size() + set_.problems.size();
    for (const std::string& name : *names) {
      if (isCertificateName(name)) file(entry, dir + name);
    }
    if (set_.certificates.size() + set_.problems.size() == before) {
      problem(entry, path + ": no certificate file (*.pem, *.crt, *.cer) in this directory");
    }
  }

 private:
  std::optional<std::string> read(std::size_t entry, const std::string& path) {
    std::string error;
    std::optional<std::string> text = files_.read(path, error);
    if (!text) {
      problem(entry, path + ": cannot read: " + error);
    } else if (std::find(set_.filesRead.begin(), set_.filesRead.end(), path) ==
               set_.filesRead.end()) {
      set_.filesRead.push_back(path);
    }
    return text;
  }

  void file(std::size_t entry, const std::string& path) {
    std::optional<std::string> pem = read(entry, path);
    if (!pem) return;
    PemContents contents;
    std::string error;
    if (!readPem(*pem, contents, error)) return problem(entry, path + ": " + error);
    if (contents.certs.empty()) return problem(entry, path + ": no PEM certificate");
    std::string keyFile = path;
    if (!contents.key) {
      keyFile = keyFileFor(path);
      std::optional<std::string> keyPem = read(entry, keyFile);
      if (!keyPem) return;
      PemContents keyContents;
      if (!readPem(*keyPem, keyContents, error)) return problem(entry, keyFile + ": " + error);
      if (!keyContents.key) return problem(entry, keyFile + ": no PEM private key");
      contents.key = std::move(keyContents.key);
    }
    if (X509_check_private_key(contents.certs.front().get(), contents.key.get()) != 1) {
      return problem(entry, keyFile + ": the private key does not match the certificate of " +
                                path + ": " + opensslError());
    }
    TlsCertificate cert;
    cert.entry = entry;
    cert.file = path;
    cert.cert = std::move(contents.certs.front());
    cert.key = std::move(contents.key);
    cert.chain.assign(std::make_move_iterator(contents.certs.begin() + 1),
                      std::make_move_iterator(contents.certs.end()));
    cert.names = certificateNames(cert.cert.get());
    set_.certificates.push_back(std::move(cert));
  }

  void problem(std::size_t entry, std::string message) {
    set_.problems.push_back({entry, std::move(message)});
  }

  const common::FileSource& files_;
  TlsCertificateSet& set_;
};

}  // namespace

TlsCertificateSet loadCertificates(const std::vector<std::string>& paths,
                                   const common::FileSource& files) {
  TlsCertificateSet set;
  Loader loader(files, set);
  for (std::size_t i = 0; i < paths.size(); ++i) loader.path(i, paths[i]);
  return set;
}

std::string runtimeCertificateFile(const std::string& name) {
  return "runtime:" + name;
}

TlsCertificateSet loadRuntimeCertificate(const std::string& name, const std::string& pem) {
  std::string file = runtimeCertificateFile(name);
  common::FileSource inline_;
  inline_.read = [&](const std::string& path, std::string& error) -> std::optional<std::string> {
    if (path == file) return pem;
    error = "not an inline certificate";
    return std::nullopt;
  };
  inline_.list = [](const std::string&, std::string&) {
    return std::optional<std::vector<std::string>>();
  };
  return loadCertificates({file}, inline_);
}

TlsCertificate shareCertificate(const TlsCertificate& c) {
  TlsCertificate copy;
  copy.entry = c.entry;
  copy.file = c.file;
  X509_up_ref(c.cert.get());
  copy.cert.reset(c.cert.get());
  EVP_PKEY_up_ref(c.key.get());
  copy.key.reset(c.key.get());
  for (const auto& x : c.chain) {
    X509_up_ref(x.get());
    copy.chain.emplace_back(x.get());
  }
  copy.names = c.names;
  return copy;
}

}  // namespace molt::tls
