// molt's command line: master, config check, version, and the worker entry point.
#include <openssl/crypto.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/log.hpp"
#include "master/master.hpp"
#include "molt_version.h"
#include "worker/worker.hpp"

namespace {

constexpr const char* kUsage =
    "usage: molt -f FILE          run the master in the foreground\n"
    "       molt -c -f FILE       check FILE and exit (0: valid, 1: errors listed)\n"
    "       molt --version        print versions\n";

int printVersion() {
  std::printf("molt %s (libuv %s, %s)\n", MOLT_VERSION, uv_version_string(),
              OpenSSL_version(OPENSSL_VERSION));
  return 0;
}

int checkConfig(const std::string& path) {
  try {
    molt::common::Config config = molt::common::loadConfigFile(path);
    std::printf("%s: configuration OK (%zu frontends, %zu backends)\n", path.c_str(),
                config.frontends.size(), config.backends.size());
    return 0;
  } catch (const molt::common::ConfigErrors& e) {
    std::fputs(e.what(), stderr);
    if (*e.what() && e.what()[std::strlen(e.what()) - 1] != '\n') std::fputc('\n', stderr);
    return 1;
  }
}

int usage(const char* problem) {
  if (problem) std::fprintf(stderr, "molt: %s\n", problem);
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--worker") return molt::worker::runWorker(molt::worker::kControlFd);
    if (arg == "--version" || arg == "-v") return printVersion();
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "-c") {
      check = true;
    } else if (arg == "-f") {
      if (++i == argc) return usage("-f needs a FILE");
      file = argv[i];
    } else {
      return usage(("unknown argument '" + std::string(arg) + "'").c_str());
    }
  }
  if (file.empty()) return usage("no config file given (-f FILE)");
  if (check) return checkConfig(file);

  molt::common::log::setRole("master");
  molt::common::log::info("molt {} starting with {}", MOLT_VERSION, file);
  molt::master::Master master({file, "/proc/self/exe"});
  return master.run();
}
