// The zygote process (`molt --zygote`): loads and relocates molt's libraries and initialises
// OpenSSL once, then forks workers for the master (master/zygote.hpp is the master's side and
// says why; common/control_messages.hpp holds the spawn request and answer).
#pragma once

namespace molt::app {

// Entry point of `molt --zygote` (its socket on `socketFd`). Returns the exit status; in a forked
// worker, runs the worker and never returns.
int runZygote(int socketFd);

}  // namespace molt::app
