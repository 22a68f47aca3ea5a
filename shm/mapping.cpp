#include "shm/mapping.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace molt::shm {

Mapping Mapping::share(int fd, size_t length, Access access, const std::string& what,
                       std::string& error) {
  int prot = access == Access::ReadWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* data = ::mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    error = fmt::format("mmap({}, {} bytes): {}", what, length, std::strerror(errno));
    return Mapping();
  }
  return Mapping(data, length);
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void Mapping::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace molt::shm
