// Test support: blocking loopback sockets with timeouts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/unique_fd.hpp"

namespace molt::test {

// Connects to 127.0.0.1:port with send/receive timeouts of `timeout`. Invalid fd on failure.
common::UniqueFd connectTo(std::uint16_t port,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
bool sendAll(int fd, const std::string& data);
// Reads exactly `n` bytes; returns fewer on EOF, error or timeout.
std::string recvExactly(int fd, size_t n);
// Reads until EOF (or error/timeout); `eof` says whether a clean EOF ended it.
std::string recvUntilEof(int fd, bool* eof = nullptr);
// Reads until `marker` appears (included) or EOF/timeout.
std::string recvUntil(int fd, const std::string& marker);
// A socket listening on 127.0.0.1 at a port the kernel chose (`port`), held by the caller.
common::UniqueFd listenOnLoopback(std::uint16_t& port);
// A port with nothing listening on it now (bound, then closed).
std::uint16_t unusedPort();
// Sends a minimal GET and returns the whole response (Connection: close).
std::string httpGet(std::uint16_t port, const std::string& path,
                    const std::string& host = "localhost");

}  // namespace molt::test
