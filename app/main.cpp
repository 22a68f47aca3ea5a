// molt's command line: master, config check, version, and the worker entry point.
#include <openssl/crypto.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "app/zygote.hpp"
#include "common/config.hpp"
#include "common/log.hpp"
#include "common/process_title.hpp"
#include "common/runtime_change.hpp"
#include "ctl/ctl.hpp"
#include "master/inventory_check.hpp"
#include "master/master.hpp"
#include "molt_version.h"
#include "tls/certificate_check.hpp"
#include "tls/settings.hpp"
#include "worker/worker.hpp"

namespace {

constexpr const char* kUsage =
    "usage: molt -f FILE          run the master in the foreground\n"
    "       molt -c -f FILE       check FILE and exit (0: valid, 1: errors listed)\n"
    "       molt ctl [-s SOCKET | -f FILE] COMMAND [ARGS] [--json]\n"
    "                             talk to a running master's runtime API (molt ctl --help)\n"
    "       molt --version        print versions\n";

// Certificates and TLS settings are checked by the code workers will run (OpenSSL), as part of
// every config check: `molt -c`, start and reload.
void installTlsValidator() {
  molt::common::setConfigValidator([](const molt::common::Config& config,
                                      const molt::common::FileSource& files, const auto& report) {
    std::set<std::string> seen;
    for (size_t i = 0; i < config.frontends.size(); ++i) {
      const auto& frontend = config.frontends[i];
      bool tls = std::any_of(frontend.binds.begin(), frontend.binds.end(),
                             [](const auto& b) { return b.tls; });
      if (!tls && frontend.certificates.empty()) continue;
      for (const auto& problem : molt::tls::validateTls(frontend, config.tls, files)) {
        std::string path = problem.key.rfind("tls.", 0) == 0
                               ? problem.key
                               : "frontends[" + std::to_string(i) + "]." + problem.key;
        if (seen.insert(path + problem.message).second) report(path, problem.message);
      }
    }
  });
}

// Runtime certificates (cert.set) are checked by the same code before the master applies them.
void installCertificateValidator() {
  molt::common::setCertificateValidator(molt::tls::checkCertificatePem);
}

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

// The file this process was exec'd from, as a path on disk: what a binary upgrade re-execs.
std::string binaryPath() {
  char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return {};
  std::string text(path, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (text.size() > kDeleted.size() && text.ends_with(kDeleted))
    text.resize(text.size() - kDeleted.size());
  return text;
}

int usage(const char* problem) {
  if (problem) std::fprintf(stderr, "molt: %s\n", problem);
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Copied before setproctitle may reuse argv's memory; a binary upgrade re-execs with it.
  std::vector<std::string> arguments(argv, argv + argc);
  molt::common::initProcessTitle(argc, argv);
  if (argc > 1 && std::string_view(argv[1]) == "ctl") return molt::ctl::runCtl(argc - 2, argv + 2);
  bool check = false;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--worker") return molt::worker::runWorker(molt::worker::kControlFd);
    if (arg == "--zygote") return molt::app::runZygote(3);
    if (arg == "--upgrade-check") {
      if (i + 2 < argc && std::string_view(argv[i + 1]) == "-f") {
        installTlsValidator();
        return molt::master::runUpgradeCheck(3, argv[i + 2]);
      }
      return usage("--upgrade-check needs -f FILE");
    }
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
  installTlsValidator();
  installCertificateValidator();
  if (check) return checkConfig(file);

  molt::common::log::setRole("master");
  molt::common::log::info("molt {} starting with {}", MOLT_VERSION, file);
  molt::master::MasterOptions options;
  options.configPath = file;
  options.binaryPath = binaryPath();
  // The program exec'd as zygote and workers: the running image, unless MOLT_WORKER_EXE names
  // another (a wrapper that runs them under valgrind, as bench/metrics does).
  if (const char* exe = std::getenv("MOLT_WORKER_EXE"); exe && *exe) options.workerExe = exe;
  options.argv = std::move(arguments);
  molt::master::Master master(std::move(options));
  return master.run();
}
