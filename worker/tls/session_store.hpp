// Where a frontend's TLS sessions live: the shared session cache and the shared ticket keys.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "shm/session_cache.hpp"
#include "shm/ticket_keys.hpp"
#include "worker/tls/fleet_sessions.hpp"

namespace molt::worker {

struct FleetWait;

// Who continues a handshake suspended for a fleet lookup: set on the SSL (TlsEngine::setWaker)
// by the stream that drives it, told from the loop once the answer is in (or given up on).
class HandshakeWaker {
 public:
  virtual ~HandshakeWaker() = default;
  virtual void wakeHandshake() noexcept = 0;
};

// Connects OpenSSL's server-side session machinery to the zones, so that any worker of any
// generation resumes any session: TLS 1.2 session ids and TLS 1.3 stateful tickets (tickets
// off) go through the SessionCache; tickets are sealed with the shared TicketKeys (encrypt
// with current, decrypt with any of the three, renew those sealed with previous or next).
// OpenSSL's per-SSL_CTX cache stays off. One store per TlsContext, on the worker's loop
// thread; its callbacks run inside OpenSSL and never throw. The zones are not owned and must
// outlive the store or be detached first.
//
// With a fleet (FleetSessions), sessions are also written to Redis, and a resumption attempt
// whose session is not in the local cache suspends the handshake at the ClientHello (OpenSSL's
// client-hello callback answers "retry") while Redis is asked; the answer, checked, goes into
// the local cache and the handshake continues, resuming, or as a full one when nothing usable
// came back in time. Only handshakes that can resume by session id ask: a TLS 1.2 session id,
// or a TLS 1.3 stateful ticket (tickets off); never a stateless ticket.
class TlsSessionStore {
 public:
  TlsSessionStore(shm::SessionCache* cache, const shm::TicketKeys* keys, FleetSessions* fleet)
      : cache_(cache), keys_(keys), fleet_(fleet) {}
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
  static int onClientHello(SSL* ssl, int* alert, void* arg);
  static void onRemoveSession(SSL_CTX* ctx, SSL_SESSION* session);
  static int onTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt);

  int newSession(SSL* ssl, SSL_SESSION* session) noexcept;
  SSL_SESSION* getSession(SSL* ssl, const unsigned char* id, int length) noexcept;
  int clientHello(SSL* ssl) noexcept;
  void fleetAnswer(SSL* ssl, FleetWait& wait, std::string_view value) noexcept;
  int ticketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                EVP_MAC_CTX* mac, int encrypt) noexcept;
  shm::TicketKeySet ticketKeys() const noexcept;

  shm::SessionCache* cache_;
  const shm::TicketKeys* keys_;
  FleetSessions* fleet_;
  std::optional<shm::TicketKeySet> detachedKeys_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace molt::worker
