#include "worker/net/spares.hpp"

namespace molt::worker {
namespace {

std::vector<void (*)() noexcept>& releases() noexcept {
  static std::vector<void (*)() noexcept> all;
  return all;
}

}  // namespace

void releaseSpares() noexcept {
  for (auto release : releases()) release();
}

namespace spares {

void addRelease(void (*release)() noexcept) noexcept {
  releases().push_back(release);
}

}  // namespace spares
}  // namespace molt::worker
