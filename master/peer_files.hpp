// Files read on behalf of a runtime-API client, with that client's own permissions.
#pragma once

#include "common/config.hpp"
#include "master/api_server.hpp"

namespace molt::master {

// The files `peer` may read: root and the master's own uid read as the master does; any other
// client's reads run in a child process that took the client's uid, gid and groups, so that a
// cert.set by path cannot make the (root) master read a file the client could not read itself.
// Only regular files up to 1 MiB; directories are not listed. Master process; blocks the loop
// for one small read (at most 2 s).
common::FileSource filesReadableBy(const ApiPeer& peer);

}  // namespace molt::master
