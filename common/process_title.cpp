#include "common/process_title.hpp"

#include <bsd/unistd.h>

#include <cstring>

extern char** environ;

namespace molt::common {
namespace {
std::string gTitle;
size_t gArgvLength = 0;  // bytes of the original command line, separators included
}  // namespace

void initProcessTitle(int argc, char** argv) {
  if (argc > 0)
    gArgvLength = static_cast<size_t>(argv[argc - 1] + std::strlen(argv[argc - 1]) - argv[0]);
  setproctitle_init(argc, argv, environ);
}

void setProcessTitle(const std::string& text) {
  if (text == gTitle) return;
  gTitle = text;
  // libbsd marks a title shorter than the original command line with a trailing '.' (so the
  // kernel reads it whole); padding with spaces to that length keeps `ps` output clean.
  std::string full = "molt: " + text;
  if (full.size() < gArgvLength) full.append(gArgvLength - full.size(), ' ');
  // The leading '-' stops libbsd from prefixing the program name itself.
  setproctitle("-%s", full.c_str());
}

}  // namespace molt::common
