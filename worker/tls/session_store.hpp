// Where a frontend's TLS sessions live: the shared session cache and the shared ticket keys.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"

namespace molt::worker {

// Connects OpenSSL's server-side session machinery to the zones, so that any worker of any
// generation resumes any session: TLS 1.2 session ids and TLS 1.3 stateful tickets (tickets
// off) go through the SessionCache; tickets are sealed with the shared TicketKeys (encrypt
// with current, decrypt with any of the three, renew those sealed with previous or next).
// OpenSSL's per-SSL_CTX cache stays off. One store per TlsContext, on the worker's loop
// thread; its callbacks run inside OpenSSL and never throw. The zones are not owned and must
// outlive the store or be detached first.
class TlsSessionStore {
 public:
  TlsSessionStore(shm::SessionCache* cache, const shm::TicketKeys* keys)
      : cache_(cache), keys_(keys) {}
  TlsSessionStore(const TlsSessionStore&) = delete;
  TlsSessionStore& operator=(const TlsSessionStore&) = delete;

  // Sets `ctx`'s cache mode and callbacks; `tickets` false means SSL_OP_NO_TICKET is set.
  void install(SSL_CTX* ctx, bool tickets);
  // Stops touching the zones (a draining worker is about to unmap them): later sessions are
  // not cached, tickets still work with a private copy of the keys as they were.
  void detach() noexcept;

 private:
  static TlsSessionStore* of(SSL_CTX* ctx);
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  static SSL_SESSION* onGetSession(SSL* ssl, const unsigned char* id, int length, int* copy);
  static void onRemoveSession(SSL_CTX* ctx, SSL_SESSION* session);
  static int onTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt);

  int newSession(SSL* ssl, SSL_SESSION* session) noexcept;
  SSL_SESSION* getSession(const unsigned char* id, int length) noexcept;
  int ticketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int encrypt) noexcept;
  shm::TicketKeySet ticketKeys() const noexcept;

  shm::SessionCache* cache_;
  const shm::TicketKeys* keys_;
  std::optional<shm::TicketKeySet> detachedKeys_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace molt::worker
