#include "tests/support/tls_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/support/net.hpp"

namespace molt::test {

TlsClient::TlsClient(std::uint16_t port, const TlsClientOptions& options) {
  fd_ = connectTo(port);
  if (!fd_) {
    error_ = "connect failed";
    return;
  }
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  if (options.version == "TLSv1.2") {
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
  } else if (options.version == "TLSv1.3") {
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
  }
  if (!options.tickets) SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof kAlpn - 1);
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_.get());
  if (!options.serverName.empty()) SSL_set_tlsext_host_name(ssl_, options.serverName.c_str());
  if (options.resume) SSL_set_session(ssl_, options.resume);
  if (SSL_connect(ssl_) != 1) {
    char text[256];
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    error_ = text;
    return;
  }
  connected_ = true;
}

TlsClient::~TlsClient() {
  if (ssl_) {
    if (connected_) SSL_shutdown(ssl_);
    SSL_free(ssl_);
  }
  if (ctx_) SSL_CTX_free(ctx_);
}

bool TlsClient::resumed() const {
  return connected_ && SSL_session_reused(ssl_) == 1;
}
std::string TlsClient::version() const {
  return connected_ ? SSL_get_version(ssl_) : "";
}

std::string TlsClient::alpn() const {
  const unsigned char* data = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(ssl_, &data, &length);
  return data ? std::string(reinterpret_cast<const char*>(data), length) : "";
}

std::string TlsClient::peerCommonName() const {
  X509* cert = connected_ ? SSL_get1_peer_certificate(ssl_) : nullptr;
  if (!cert) return "";
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
  X509_free(cert);
  return name;
}

bool TlsClient::send(const std::string& data) {
  return connected_ && SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
                           static_cast<int>(data.size());
}

std::string TlsClient::receive(std::size_t n) {
  std::string out;
  char chunk[16384];
  while (connected_ && out.size() < n) {
    int r = SSL_read(ssl_, chunk, static_cast<int>(std::min(sizeof chunk, n - out.size())));
    if (r <= 0) break;
    out.append(chunk, static_cast<std::size_t>(r));
  }
  return out;
}

bool TlsClient::peerClosedCleanly() const {
  return connected_ && (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
}

void TlsClient::closeSending() {
  if (connected_) SSL_shutdown(ssl_);
  shutdown(fd_.get(), SHUT_WR);
}

void TlsClient::closeSocketSending() {
  if (connected_) SSL_set_quiet_shutdown(ssl_, 1);  // nor later: the socket's sending side is shut
  shutdown(fd_.get(), SHUT_WR);
}

std::size_t TlsClient::rawBytesUntilClose() {
  std::size_t total = 0;
  char chunk[4096];
  for (ssize_t n; (n = recv(fd_.get(), chunk, sizeof chunk, 0)) > 0;)
    total += static_cast<std::size_t>(n);
  return total;
}

TlsSession TlsClient::session() const {
  return TlsSession(connected_ ? SSL_get1_session(ssl_) : nullptr);
}

bool makeCertificate(const std::string& path, const std::string& commonName) {
  std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj '/CN=" +
      commonName + "' -addext 'subjectAltName=DNS:" + commonName + "' -keyout '" + path +
      ".key' -out '" + path + ".crt' >/dev/null 2>&1 && cat '" + path + ".crt' '" + path +
      ".key' > '" + path + "' && rm -f '" + path + ".crt' '" + path + ".key'";
  int status = std::system(command.c_str());
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace molt::test
