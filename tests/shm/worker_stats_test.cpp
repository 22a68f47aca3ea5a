// A worker's stats zone (shm/worker_stats.hpp) and the master's folding of it
// (master/counters.hpp): layout, row claims, and what a misbehaving worker can and cannot do.
#include "shm/worker_stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "master/counters.hpp"

using namespace molt;

namespace {

common::UniqueFd reopen(const shm::WorkerStats& stats) {
  return common::UniqueFd(::dup(stats.zone().fd()));
}

}  // namespace

TEST_CASE("a stats zone's layout is fixed by frontends and backend rows", "[shm][stats]") {
  auto l = shm::StatsLayout::of(3, 10);
  REQUIRE(l.workerOffset == 128);
  REQUIRE(l.frontendsOffset == 192);
  REQUIRE(l.backendsOffset % 128 == 0);
  REQUIRE(l.backendsOffset >= l.frontendsOffset + 3 * sizeof(shm::FrontendRow));
  REQUIRE(l.size % 4096 == 0);
  REQUIRE(l.size >= l.backendsOffset + 10 * sizeof(shm::BackendRow));
}

TEST_CASE("a worker attaches the zone the master made and claims backend rows in order",
          "[shm][stats]") {
  std::string error;
  auto master = shm::WorkerStats::create(shm::StatsLayout::of(2, 3), error);
  REQUIRE(master);
  // A worker with another count of frontends refuses it.
  REQUIRE_FALSE(shm::WorkerStats::attach(reopen(*master), master->layout().size, 1, error));
  REQUIRE(error.find("this worker has 1 frontends") != std::string::npos);
  auto worker = shm::WorkerStats::attach(reopen(*master), master->layout().size, 2, error);
  REQUIRE(worker);
  REQUIRE(worker->layout().backends == 3);
  shm::BackendRow* a = worker->claimBackend("app");
  shm::BackendRow* b = worker->claimBackend("api");
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(worker->claimBackend(std::string(300, 'x')) == nullptr);  // too long a name
  REQUIRE(worker->claimBackend("c") != nullptr);
  REQUIRE(worker->claimBackend("d") == nullptr);  // no row left
  REQUIRE(master->backendName(0) == "app");
  REQUIRE(master->backendName(1) == "api");
  REQUIRE(master->backendName(3).empty());  // out of range

  shm::bump(a->requests, 5);
  shm::recordResponse(*a, 800);         // le 0.001
  shm::recordResponse(*a, 20'000);      // le 0.025
  shm::recordResponse(*a, 60'000'000);  // +Inf
  REQUIRE(a->responses.load() == 3);
  REQUIRE(a->responseMicros.load() == 60'020'800);
  REQUIRE(a->buckets[0].load() == 1);
  REQUIRE(a->buckets[3].load() == 1);
  REQUIRE(a->buckets[shm::kBucketCount - 1].load() == 1);
}

TEST_CASE("the master folds a worker's counters monotonically and validates its names",
          "[master][stats]") {
  std::string error;
  auto zone = shm::WorkerStats::create(shm::StatsLayout::of(1, 4), error);
  REQUIRE(zone);
  auto worker = shm::WorkerStats::attach(reopen(*zone), zone->layout().size, 1, error);
  REQUIRE(worker);
  master::WorkerCounters counters(std::move(zone), {"www"});

  shm::bump(worker->frontend(0).requests, 10);
  shm::bump(worker->frontend(0).responses[1], 9);
  shm::BackendRow* app = worker->claimBackend("app");
  shm::bump(app->requests, 7);
  counters.fold();
  master::CounterTotals totals;
  counters.addTo(totals);
  REQUIRE(totals.frontends["www"].requests == 10);
  REQUIRE(totals.frontends["www"].responses[1] == 9);
  REQUIRE(totals.backends["app"].requests == 7);

  // A worker that lowers its counters, renames a row or writes a label-breaking name changes
  // nothing that was counted.
  worker->frontend(0).requests.store(3);
  std::memcpy(app->name, "evil", 4);
  shm::BackendRow* bad = worker->claimBackend("ok");
  std::memcpy(bad->name, "a\"b", 3);
  bad->nameLength.store(3);
  shm::bump(bad->requests, 100);
  shm::BackendRow* huge = worker->claimBackend("x");
  huge->nameLength.store(100000);
  counters.fold();
  master::CounterTotals again;
  counters.addTo(again);
  REQUIRE(again.frontends["www"].requests == 10);
  REQUIRE(again.backends.size() == 1);  // an unnamed row ends the scan
  REQUIRE(again.backends["app"].requests == 7);

  // Counters survive the JSON of a binary upgrade's inventory.
  master::CounterTotals restored = master::CounterTotals::fromJson(again.toJson());
  REQUIRE(restored.frontends["www"].requests == 10);
  REQUIRE(restored.frontends["www"].responses[1] == 9);
  REQUIRE(restored.backends["app"].requests == 7);
  std::vector<int> fds;
  nlohmann::json entry = counters.inventory(fds);
  REQUIRE(fds.size() == 1);
  entry["fd"] = ::dup(fds[0]);
  auto back = master::WorkerCounters::restore(entry, error);
  REQUIRE(back);
  master::CounterTotals fromRestored;
  back->addTo(fromRestored);
  REQUIRE(fromRestored.frontends["www"].requests == 10);
  REQUIRE(fromRestored.backends["app"].requests == 7);
}

TEST_CASE("a histogram counts into its buckets and survives JSON", "[master][stats]") {
  master::Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(3);
  REQUIRE(h.counts == std::vector<std::uint64_t>{1, 1, 1});
  REQUIRE(h.count == 3);
  master::Histogram other({0.1, 1});
  other.fromJson(h.toJson());
  REQUIRE(other.counts == h.counts);
  master::Histogram differentBounds({0.2, 1});
  differentBounds.fromJson(h.toJson());  // refused: other buckets
  REQUIRE(differentBounds.count == 0);
}
