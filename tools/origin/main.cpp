// molt-origin: the test origin server used by molt's integration tests, quick start and
// benchmarks. One libuv loop, HTTP/1.1 and websocket echo listeners, TCP echo listeners.
#include <uv.h>

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "common/log.hpp"
#include "tools/origin/options.hpp"
#include "tools/origin/server.hpp"

namespace {

constexpr int kUsageError = 2;

int run(const molt::origin::Options& options) {
  uv_loop_t* loop = uv_default_loop();
  int status = 0;
  {
    molt::origin::Server server(loop, options.name);
    for (const auto& spec : options.listeners) {
      std::string error;
      if (!server.listen(spec, error)) {
        molt::common::log::error("{}", error);
        status = kUsageError;
        server.stop();
        break;
      }
    }
    if (status == 0) server.watchSignals();
    uv_run(loop, UV_RUN_DEFAULT);
  }
  uv_run(loop, UV_RUN_DEFAULT);  // lets the close callbacks of the Server's handles free them
  uv_loop_close(loop);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  molt::common::log::setRole("origin");
  std::string error;
  auto options = molt::origin::parseOptions(argc, argv, error);
  if (!options) {
    molt::common::log::error("{}", error);
    std::fputs(molt::origin::kUsage, stderr);
    return kUsageError;
  }
  if (options->help) {
    std::fputs(molt::origin::kUsage, stdout);
    return 0;
  }
  // A peer that resets while we write must fail the write, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  return run(*options);
}
