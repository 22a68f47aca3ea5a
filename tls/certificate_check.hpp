// Master: checks the PEM text of a runtime certificate (cert.set) before it is applied, with the
// code a worker loads certificates with. Installed by main() through
// common::setCertificateValidator.
#pragma once

#include <string>

namespace molt::tls {

// "" when `pem` holds a certificate (leaf first, then its chain) and the private key matching it,
// usable by an OpenSSL server context and carrying a DNS name (subjectAltName, else CN) for SNI;
// else the reason. Any thread; touches no shared state.
std::string checkCertificatePem(const std::string& pem);

}  // namespace molt::tls
