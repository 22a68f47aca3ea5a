#include "master/generation_builder.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/bundle.hpp"

namespace molt::master {

LoadedConfig loadConfig(const std::string& path, const Journal& journal, bool readStateFile) {
  common::Bundle bundle;
  bundle.configPath = path;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    throw common::ConfigErrors(
        {common::ConfigError{path, 0, 0, "", std::string("cannot read: ") + std::strerror(errno)}});
  }
  bundle.configText = text.str();
  // Side files are read once, here, and the same bytes go to the workers.
  common::FileSource disk = common::FileSource::disk();
  common::FileSource recording = disk;
  recording.read = [&](const std::string& file, std::string& error) {
    auto data = disk.read(file, error);
    if (data) bundle.files[file] = *data;
    return data;
  };
  LoadedConfig loaded;
  loaded.config =
      std::make_unique<common::Config>(common::parseConfig(bundle.configText, path, recording));
  std::string error;
  loaded.journal = journal;
  const std::string& stateFile = loaded.config->global.stateFile;
  if (readStateFile && !stateFile.empty() && !loaded.journal.loadStateFile(stateFile, error))
    throw common::ConfigErrors({common::ConfigError{path, 0, 0, "global.state_file", error}});
  loaded.conflicts = loaded.journal.replay(*loaded.config, recording);
  bundle.journal = loaded.journal.toText();
  loaded.bundle = common::writeBundle(bundle, error);
  if (!loaded.bundle)
    throw common::ConfigErrors({common::ConfigError{path, 0, 0, "", "handover bundle: " + error}});
  return loaded;
}

BuiltGeneration GenerationBuilder::build(const Journal& journal, bool readStateFile) {
  BuiltGeneration out;
  LoadedConfig loaded;
  try {
    loaded = loadConfig(configPath_, journal, readStateFile);
  } catch (const common::ConfigErrors& e) {
    for (const auto& error : e.errors()) out.errors.push_back(error.str());
    if (out.errors.empty()) out.errors.push_back(e.what());
    return out;
  }
  out.journal = loaded.journal;
  out.conflicts = std::move(loaded.conflicts);
  auto generation = std::make_unique<Generation>(nextId_, std::move(loaded));
  std::shared_ptr<shm::SessionCache> cache;
  std::shared_ptr<shm::TicketKeys> keys;
  if (std::string error = tlsZones_.prepare(generation->config(), cache, keys); !error.empty())
    out.errors.push_back(configPath_ + ": " + error);
  generation->setZones(std::move(cache), std::move(keys));
  std::string stateError;
  auto isUp = [this](const std::string& b, const std::string& s) { return checker_.isUp(b, s); };
  if (out.errors.empty() && !generation->buildServerState(isUp, stateError))
    out.errors.push_back(configPath_ + ": server state zone: " + stateError);
  std::vector<std::string> listenerErrors;
  if (out.errors.empty() && !generation->acquireListeners(listeners_, listenerErrors))
    for (const auto& e : listenerErrors) out.errors.push_back(configPath_ + ": " + e);
  if (!out.errors.empty()) {
    generation.reset();
    listeners_.prune();
    return out;
  }
  generation->resizeSlots(generation->config().global.workers);
  ++nextId_;
  out.generation = std::move(generation);
  return out;
}

}  // namespace molt::master
