// libsystemd, loaded only by a master that systemd started.
//
// Workers are the same binary; linking libsystemd would map it and the libraries it pulls in
// (libgcrypt, lz4, zstd, lzma, libcap: about 130 KiB of private relocated data per process)
// into every worker for nothing. So the master dlopens it the first time it is needed, and only
// when the environment says systemd is there (NOTIFY_SOCKET, LISTEN_FDS).
#pragma once

namespace molt::master::systemd {

// sd_notify(0, state); -ENOSYS when libsystemd cannot be loaded, 0 without NOTIFY_SOCKET.
int notify(const char* state);
// sd_listen_fds_with_names(1, names); 0 without LISTEN_FDS.
int listenFdsWithNames(char*** names);
// sd_is_socket(fd, family, type, listening).
int isSocket(int fd, int family, int type, int listening);

}  // namespace molt::master::systemd
