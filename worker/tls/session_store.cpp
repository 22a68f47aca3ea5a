#include "worker/tls/session_store.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <ctime>
#include <memory>

namespace molt::worker {

// A handshake's fleet lookup: asked once per handshake, its checked answer kept for getSession.
// The SSL owns it (freed with the SSL); the lookup's answer holds a weak reference.
struct FleetWait {
  bool answered = false;
  std::vector<std::uint8_t> id;
  std::vector<std::uint8_t> session;  // DER, checked; empty: nothing usable came
};

namespace {

int storeIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

using FleetWaitPtr = std::shared_ptr<FleetWait>;

int waitIndex() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<FleetWaitPtr*>(ptr);
      });
  return index;
}

FleetWait* waitOf(SSL* ssl) {
  auto* slot = static_cast<FleetWaitPtr*>(SSL_get_ex_data(ssl, waitIndex()));
  return slot != nullptr ? slot->get() : nullptr;
}

bool hasVersion13(const unsigned char* data, std::size_t length) {
  if (length < 1 || data[0] + 1u > length) return false;
  for (std::size_t i = 1; i + 1 < data[0] + 1u; i += 2)
    if (data[i] == 0x03 && data[i + 1] == 0x04) return true;
  return false;
}

// The id a ClientHello can resume by through the session cache, or an empty span: the legacy
// session id when TLS 1.2 will be spoken and no ticket is offered; the first PSK identity when
// TLS 1.3 will be spoken with stateful tickets (SSL_OP_NO_TICKET), of the length OpenSSL looks up.
std::span<const std::uint8_t> resumptionId(SSL* ssl) {
  const unsigned char* data = nullptr;
  std::size_t length = 0;
  bool tickets = (SSL_get_options(ssl) & SSL_OP_NO_TICKET) == 0;
  bool tls13 =
      SSL_get_max_proto_version(ssl) == 0 || SSL_get_max_proto_version(ssl) >= TLS1_3_VERSION;
  if (tls13 &&
      SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &data, &length) == 1 &&
      hasVersion13(data, length)) {
    if (tickets || SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &data, &length) != 1) return {};
    // identities<7..2^16-1>: {identity<1..2^16-1>, obfuscated_ticket_age u32}...
    if (length < 4) return {};
    std::size_t idLength = (std::size_t(data[2]) << 8) | data[3];
    if (idLength == 0 || idLength > SSL_MAX_SSL_SESSION_ID_LENGTH || 4 + idLength > length)
      return {};
    return {data + 4, idLength};
  }
  if (tickets && SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_session_ticket, &data, &length) == 1 &&
      length > 0)
    return {};
  length = SSL_client_hello_get0_session_id(ssl, &data);
  return {data, length};
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
  if (cache_ != nullptr || fleet_ != nullptr) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, onNewSession);
    SSL_CTX_sess_set_get_cb(ctx, onGetSession);
    SSL_CTX_sess_set_remove_cb(ctx, onRemoveSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (fleet_ != nullptr) SSL_CTX_set_client_hello_cb(ctx, onClientHello, nullptr);
  // Without shared keys OpenSSL's per-context random keys still give same-worker resumption.
  if (tickets && keys_ != nullptr) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, onTicketKey);
}

void TlsSessionStore::detach() noexcept {
  if (keys_ != nullptr) detachedKeys_ = keys_->snapshot();
  keys_ = nullptr;
  cache_ = nullptr;
  fleet_ = nullptr;
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
  return store != nullptr ? store->getSession(ssl, id, length) : nullptr;
}

int TlsSessionStore::onClientHello(SSL* ssl, int*, void*) {
  TlsSessionStore* store = of(SSL_get_SSL_CTX(ssl));
  return store != nullptr ? store->clientHello(ssl) : SSL_CLIENT_HELLO_SUCCESS;
}

// Called again for the same handshake when it is driven again: while the answer is out it keeps
// answering "retry"; once it is in (or was given up on), "go on".
int TlsSessionStore::clientHello(SSL* ssl) noexcept {
  if (FleetWait* wait = waitOf(ssl))
    return wait->answered ? SSL_CLIENT_HELLO_SUCCESS : SSL_CLIENT_HELLO_RETRY;
  if (fleet_ == nullptr || !fleet_->available()) return SSL_CLIENT_HELLO_SUCCESS;
  std::span<const std::uint8_t> id = resumptionId(ssl);
  if (id.empty()) return SSL_CLIENT_HELLO_SUCCESS;
  if (cache_ != nullptr && cache_->lookup(id, scratch_)) return SSL_CLIENT_HELLO_SUCCESS;
  try {
    auto wait = std::make_shared<FleetWait>();
    wait->id.assign(id.begin(), id.end());
    auto slot = std::make_unique<FleetWaitPtr>(wait);
    if (SSL_set_ex_data(ssl, waitIndex(), slot.get()) != 1) return SSL_CLIENT_HELLO_SUCCESS;
    slot.release();
    std::weak_ptr<FleetWait> weak = wait;
    bool asked = fleet_->lookup(id, [this, ssl, weak](std::string_view value) {
      if (auto w = weak.lock()) fleetAnswer(ssl, *w, value);
    });
    if (!asked) {
      wait->answered = true;
      return SSL_CLIENT_HELLO_SUCCESS;
    }
    return SSL_CLIENT_HELLO_RETRY;
  } catch (...) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
}

// Redis's answer is untrusted: it must be a session OpenSSL decodes, for the id asked, not
// expired. A good one also goes into the local cache, for every worker of this instance.
void TlsSessionStore::fleetAnswer(SSL* ssl, FleetWait& wait, std::string_view value) noexcept {
  wait.answered = true;
  if (!value.empty()) {
    const char* problem = nullptr;
    const auto* in = reinterpret_cast<const unsigned char*>(value.data());
    SSL_SESSION* session = value.size() <= shm::SessionCache::kMaxValueBytes
                               ? d2i_SSL_SESSION(nullptr, &in, static_cast<long>(value.size()))
                               : nullptr;
    unsigned int idLength = 0;
    const unsigned char* id = session ? SSL_SESSION_get_id(session, &idLength) : nullptr;
    std::int64_t left = session ? SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) -
                                      std::time(nullptr)
                                : 0;
    if (session == nullptr) {
      problem = "not a TLS session OpenSSL decodes";
    } else if (idLength != wait.id.size() || std::memcmp(id, wait.id.data(), idLength) != 0) {
      problem = "a session for another id";
    } else if (left <= 0) {
      problem = "an expired session";
    }
    SSL_SESSION_free(session);
    if (problem != nullptr) {
      if (fleet_ != nullptr) fleet_->refused(problem);
    } else {
      try {
        wait.session.assign(value.begin(), value.end());
      } catch (...) {
      }
      if (fleet_ != nullptr) fleet_->hit();
      if (cache_ != nullptr) cache_->store(wait.id, wait.session, std::chrono::seconds(left));
    }
  }
  if (auto* waker = static_cast<HandshakeWaker*>(SSL_get_app_data(ssl))) waker->wakeHandshake();
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
  if ((cache_ == nullptr && fleet_ == nullptr) ||
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
  if (cache_ != nullptr) cache_->store({id, idLength}, scratch_, ttl);
  if (fleet_ != nullptr) fleet_->store({id, idLength}, scratch_, ttl);
  return 0;
}

SSL_SESSION* TlsSessionStore::getSession(SSL* ssl, const unsigned char* id, int length) noexcept {
  if (length <= 0) return nullptr;
  if (FleetWait* wait = waitOf(ssl); wait != nullptr && !wait->session.empty() &&
                                     wait->id.size() == static_cast<std::size_t>(length) &&
                                     std::memcmp(wait->id.data(), id, wait->id.size()) == 0) {
    const unsigned char* in = wait->session.data();
    return d2i_SSL_SESSION(nullptr, &in, static_cast<long>(wait->session.size()));
  }
  if (cache_ == nullptr) return nullptr;
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
