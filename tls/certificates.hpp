// Certificates of a frontend: read from PEM files or directories through a FileSource.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "tls/openssl.hpp"

namespace molt::tls {

// One certificate a frontend serves: leaf, key, chain, and the names SNI matches it by.
struct TlsCertificate {
  std::size_t entry = 0;  // index of its path in the frontend's "certificates" list
  std::string file;       // the PEM file the leaf came from
  X509Ptr cert;
  EvpPkeyPtr key;
  std::vector<X509Ptr> chain;      // the file's further certificates, in order
  std::vector<std::string> names;  // subjectAltName DNS names (else the CN), lower-case
};

struct TlsCertificateProblem {
  std::size_t entry;    // index of the path in the frontend's "certificates" list
  std::string message;  // "FILE: reason", with OpenSSL's reason when it has one
};

struct TlsCertificateSet {
  std::vector<TlsCertificate> certificates;  // in list order; a directory's files sorted
  std::vector<TlsCertificateProblem> problems;
  std::vector<std::string> filesRead;  // every file read, key files included (for the bundle)
  // Certificates from this index on were set through the runtime API: for the SNI names they
  // share with earlier ones (the file's), they win.
  std::size_t overridingFrom = static_cast<std::size_t>(-1);
};

// The name runtime certificate NAME has as its `file` ("runtime:NAME").
std::string runtimeCertificateFile(const std::string& name);
// Parses inline PEM (certificate, chain, private key) as runtime certificate `name`.
TlsCertificateSet loadRuntimeCertificate(const std::string& name, const std::string& pem);
// Another reference to the same OpenSSL objects.
TlsCertificate shareCertificate(const TlsCertificate& certificate);

// Loads every certificate of `paths`, each a PEM file or a directory of them (its *.pem, *.crt
// and *.cer files). A file holds the leaf certificate first, then its chain, and its private
// key; a file without a key takes it from the file of the same name ending in ".key"
// ("site.pem" + "site.key"). Reads only through `files`: the master passes the disk, a worker
// its handover bundle. Every problem is reported, not just the first. Never throws but
// bad_alloc.
TlsCertificateSet loadCertificates(const std::vector<std::string>& paths,
                                   const common::FileSource& files);

}  // namespace molt::tls
