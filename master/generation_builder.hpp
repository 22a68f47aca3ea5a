// Builds a generation from the config file, one small step after another: read and validate,
// replay the runtime journal, the TLS zones, the server-state zone, the listeners.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "master/generation.hpp"
#include "master/health_check.hpp"
#include "master/journal.hpp"
#include "master/listener.hpp"
#include "master/tls_zones.hpp"

namespace molt::master {

// Reads and validates `path`, recording every side file into the handover bundle, then replays
// `journal` over it (first read from global.state_file when `readStateFile`). Throws
// common::ConfigErrors on any problem (an unusable bundle or state file is reported the same
// way).
LoadedConfig loadConfig(const std::string& path, const Journal& journal = {},
                        bool readStateFile = false);

// What one build produced: a generation ready for its workers, or every reason it is not.
struct BuiltGeneration {
  std::unique_ptr<Generation> generation;
  std::vector<std::string> errors;  // one line each, "FILE:LINE:COL: path: message" or similar
  // Changes the journal held that no longer apply to the file (dropped, reported once), and the
  // journal as it is once they are gone: the master's from now on.
  std::vector<JournalConflict> conflicts;
  Journal journal;
};

// Makes generations with increasing ids. On failure nothing the master holds changed: the TLS
// zones are only prepared (TlsZones::commit once the generation serves), listeners bound for the
// failed build are pruned.
// Master process, master loop.
class GenerationBuilder {
 public:
  GenerationBuilder(std::string configPath, ListenerSet& listeners, TlsZones& tlsZones,
                    const HealthChecker& checker)
      : configPath_(std::move(configPath)),
        listeners_(listeners),
        tlsZones_(tlsZones),
        checker_(checker) {}

  // Builds generation nextId() from the file with `journal` replayed over it (read from
  // global.state_file first when `readStateFile`: a fresh start).
  BuiltGeneration build(const Journal& journal, bool readStateFile);
  const std::string& configPath() const { return configPath_; }
  unsigned nextId() const { return nextId_; }
  // Binary upgrade: ids continue where the previous image stopped.
  void setNextId(unsigned id) { nextId_ = id; }

 private:
  std::string configPath_;
  ListenerSet& listeners_;
  TlsZones& tlsZones_;
  const HealthChecker& checker_;
  unsigned nextId_ = 1;
};

}  // namespace molt::master
