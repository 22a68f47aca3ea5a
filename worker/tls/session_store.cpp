#include "worker/tls/session_store.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>

namespace molt::worker {
namespace {

int storeIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The ticket's HMAC and cipher keys, in the form OpenSSL 3's ticket callback wants them.
bool initTicketCrypto(const shm::TicketKey& key, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<std::uint8_t*>(key.hmacKey.data()), key.hmacKey.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return false;
  return encrypt
             ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aesKey.data(), iv) == 1
             : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aesKey.data(), iv) == 1;
}

}  // namespace

void TlsSessionStore::install(SSL_CTX* ctx, bool tickets) {
  SSL_CTX_set_ex_data(ctx, storeIndex(), this);
  if (cache_ != nullptr) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, onNewSession);
    SSL_CTX_sess_set_get_cb(ctx, onGetSession);
    SSL_CTX_sess_set_remove_cb(ctx, onRemoveSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  // Without shared keys OpenSSL's per-context random keys still give same-worker resumption.
  if (tickets && keys_ != nullptr) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, onTicketKey);
}

void TlsSessionStore::detach() noexcept {
  if (keys_ != nullptr) detachedKeys_ = keys_->snapshot();
  keys_ = nullptr;
  cache_ = nullptr;
}

TlsSessionStore* TlsSessionStore::of(SSL_CTX* ctx) {
  return static_cast<TlsSessionStore*>(SSL_CTX_get_ex_data(ctx, storeIndex()));
}

int TlsSessionStore::onNewSession(SSL* ssl, SSL_SESSION* session) {
  TlsSessionStore* store = of(SSL_get_SSL_CTX(ssl));
  return store != nullptr ? store->newSession(ssl, session) : 0;
}

SSL_SESSION* TlsSessionStore::onGetSession(SSL* ssl, const unsigned char* id, int length,
                                           int* copy) {
  *copy = 0;  // the returned reference is OpenSSL's
  TlsSessionStore* store = of(SSL_get_SSL_CTX(ssl));
  return store != nullptr ? store->getSession(id, length) : nullptr;
}

void TlsSessionStore::onRemoveSession(SSL_CTX* ctx, SSL_SESSION* session) {
  TlsSessionStore* store = of(ctx);
  if (store == nullptr || store->cache_ == nullptr) return;
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &length);
  if (length > 0) store->cache_->remove({id, length});
}

int TlsSessionStore::onTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv,
                                 EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  TlsSessionStore* store = of(SSL_get_SSL_CTX(ssl));
  return store != nullptr ? store->ticketKey(ssl, name, iv, cipher, mac, encrypt) : -1;
}

// Returns 0: the store keeps a serialized copy, not OpenSSL's reference.
int TlsSessionStore::newSession(SSL* ssl, SSL_SESSION* session) noexcept {
  // With stateless TLS 1.3 tickets OpenSSL still reports each ticket's session, under a dummy
  // id nobody will ever present: caching it would only push real sessions out.
  if (cache_ == nullptr ||
      (SSL_version(ssl) >= TLS1_3_VERSION && (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0)) {
    return 0;
  }
  unsigned int idLength = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &idLength);
  int size = i2d_SSL_SESSION(session, nullptr);
  if (idLength == 0 || size <= 0 ||
      static_cast<std::size_t>(size) > shm::SessionCache::kMaxValueBytes) {
    return 0;
  }
  try {
    scratch_.resize(static_cast<std::size_t>(size));
  } catch (...) {
    return 0;
  }
  unsigned char* out = scratch_.data();
  i2d_SSL_SESSION(session, &out);
  auto ttl = std::chrono::seconds(SSL_SESSION_get_timeout(session));
  cache_->store({id, idLength}, scratch_, ttl);
  return 0;
}

SSL_SESSION* TlsSessionStore::getSession(const unsigned char* id, int length) noexcept {
  if (cache_ == nullptr || length <= 0) return nullptr;
  if (!cache_->lookup({id, static_cast<std::size_t>(length)}, scratch_)) return nullptr;
  const unsigned char* in = scratch_.data();
  return d2i_SSL_SESSION(nullptr, &in, static_cast<long>(scratch_.size()));
}

shm::TicketKeySet TlsSessionStore::ticketKeys() const noexcept {
  return keys_ != nullptr ? keys_->snapshot() : *detachedKeys_;
}

// Returns 1 (sealed/opened with current), 2 (opened, and a fresh ticket is to be issued), 0
// (unknown key: full handshake) or -1 (failure). Renewal: tickets sealed with previous or next,
// and every TLS 1.3 ticket, because TLS 1.3 clients use a ticket once and OpenSSL sends no new
// one after a resumption unless asked; without it every other connection would be a full
// handshake.
int TlsSessionStore::ticketKey(SSL* ssl, unsigned char* name, unsigned char* iv,
                               EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) noexcept {
  if (keys_ == nullptr && !detachedKeys_) return encrypt ? -1 : 0;
  shm::TicketKeySet keys = ticketKeys();
  if (encrypt) {
    std::memcpy(name, keys.current.name.data(), keys.current.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    return initTicketCrypto(keys.current, iv, cipher, mac, 1) ? 1 : -1;
  }
  for (const shm::TicketKey* key : {&keys.current, &keys.previous, &keys.next}) {
    if (std::memcmp(name, key->name.data(), key->name.size()) != 0) continue;
    if (!initTicketCrypto(*key, iv, cipher, mac, 0)) return -1;
    return key == &keys.current && SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
  }
  return 0;
}

}  // namespace molt::worker
