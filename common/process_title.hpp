// Process titles as `ps` shows them ("molt: worker gen 7 slot 1").
#pragma once

#include <string>

namespace molt::common {

// Prepares argv/environ for retitling (libbsd setproctitle_init). Call first thing in main().
void initProcessTitle(int argc, char** argv);

// Sets the title to "molt: TEXT". Cheap to call repeatedly; a no-op when TEXT is unchanged.
void setProcessTitle(const std::string& text);

}  // namespace molt::common
