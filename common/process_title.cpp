#include "common/process_title.hpp"

#include <bsd/unistd.h>

extern char** environ;

namespace molt::common {
namespace {
std::string gTitle;
}

void initProcessTitle(int argc, char** argv) {
  setproctitle_init(argc, argv, environ);
}

void setProcessTitle(const std::string& text) {
  if (text == gTitle) return;
  gTitle = text;
  // The leading '-' stops libbsd from prefixing the program name itself.
  setproctitle("-molt: %s", text.c_str());
}

}  // namespace molt::common
