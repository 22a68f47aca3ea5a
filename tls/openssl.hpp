// Owners for OpenSSL objects, and OpenSSL's error queue as text.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace molt::tls {

template <auto Free>
struct OpensslDeleter {
  template <class T>
  void operator()(T* object) const noexcept {
    Free(object);
  }
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, OpensslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpensslDeleter<SSL_free>>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, OpensslDeleter<SSL_SESSION_free>>;
using X509Ptr = std::unique_ptr<X509, OpensslDeleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO_free_all>>;

// The reasons queued by the failing OpenSSL call(s), "; "-separated (ERR_error_string_n), and
// the queue emptied; `fallback` when nothing was queued. Call right after the failure, on the
// same thread.
std::string opensslError(const char* fallback = "unknown OpenSSL error");

}  // namespace molt::tls
