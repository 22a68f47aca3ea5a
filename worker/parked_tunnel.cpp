// ParkedTunnel's allocation: see parked_tunnel.hpp.
#include "worker/parked_tunnel.hpp"

#include <new>
#include <vector>

namespace molt::worker {
namespace {

// Cells of 64 KiB blocks, a free list through them; the blocks go when the last cell is freed. A
// worker is one thread: the pool is its own.
class TunnelPool {
 public:
  void* take() {
    if (!free_) grow();
    Cell* cell = free_;
    free_ = cell->next;
    ++used_;
    return cell;
  }
  void give(void* p) noexcept {
    auto* cell = static_cast<Cell*>(p);
    cell->next = free_;
    free_ = cell;
    if (--used_ != 0) return;
    free_ = nullptr;
    blocks_.clear();
    blocks_.shrink_to_fit();
  }

 private:
  union Cell {
    Cell* next;
    alignas(ParkedTunnel) unsigned char bytes[sizeof(ParkedTunnel)];
  };
  static constexpr std::size_t kCellsPerBlock = 64 * 1024 / sizeof(Cell);

  void grow() {
    blocks_.reserve(blocks_.size() + 1);  // may throw before the block exists
    std::unique_ptr<Cell[]> block(new Cell[kCellsPerBlock]);
    for (std::size_t i = kCellsPerBlock; i-- > 0;) {
      block[i].next = free_;
      free_ = &block[i];
    }
    blocks_.push_back(std::move(block));
  }

  std::vector<std::unique_ptr<Cell[]>> blocks_;
  Cell* free_ = nullptr;
  std::size_t used_ = 0;
};

// Never destroyed: a tunnel parked when the process exits is freed into it after static
// destructors ran.
TunnelPool& pool() {
  static TunnelPool* p = new TunnelPool;
  return *p;
}

}  // namespace

void* ParkedTunnel::operator new(std::size_t size) {
  if (size != sizeof(ParkedTunnel)) return ::operator new(size);
  return pool().take();
}

void ParkedTunnel::operator delete(void* p, std::size_t size) noexcept {
  if (!p) return;
  if (size != sizeof(ParkedTunnel)) return ::operator delete(p);
  pool().give(p);
}

}  // namespace molt::worker
