#include "common/runtime_change.hpp"

#include <algorithm>
#include <limits>
#include <new>

#include "common/runtime_change_detail.hpp"

namespace molt::common {
namespace runtime_detail {

void refuse(const std::string& message) {
  throw ChangeError(message);
}

Request::Request(const nlohmann::json& change, std::initializer_list<std::string_view> known)
    : change_(change) {
  cmd_ = change.at("cmd").get<std::string>();
  for (const auto& [key, value] : change.items()) {
    if (key == "cmd" || std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::vector<std::string_view> names(known.begin(), known.end());
    refuse(key + ": unknown key for " + cmd_ + didYouMean(key, names));
  }
}

bool Request::has(std::string_view key) const {
  return change_.contains(key);
}

const nlohmann::json& Request::value(std::string_view key) const {
  auto it = change_.find(key);
  if (it == change_.end()) refuse(std::string(key) + ": missing (" + cmd_ + " needs it)");
  return *it;
}

const std::string& Request::string(std::string_view key) const {
  const nlohmann::json& v = value(key);
  if (!v.is_string()) refuse(std::string(key) + ": expected a string");
  return v.get_ref<const std::string&>();
}

const std::string* Request::optionalString(std::string_view key) const {
  return has(key) ? &string(key) : nullptr;
}

std::optional<std::int64_t> Request::optionalInteger(std::string_view key, std::int64_t min,
                                                     std::int64_t max) const {
  if (!has(key)) return std::nullopt;
  const nlohmann::json& v = value(key);
  if (!v.is_number_integer()) refuse(std::string(key) + ": expected an integer");
  bool fits = v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(max)
                                     : v.get<std::int64_t>() >= min && v.get<std::int64_t>() <= max;
  if (!fits && max == std::numeric_limits<std::int64_t>::max()) {
    refuse(std::string(key) + ": must be at least " + std::to_string(min));
  } else if (!fits) {
    refuse(std::string(key) + ": must be between " + std::to_string(min) + " and " +
           std::to_string(max));
  }
  return v.get<std::int64_t>();
}

std::string didYouMean(std::string_view word, const std::vector<std::string_view>& names) {
  std::string_view best =
      config_detail::closestMatch(word, names.data(), names.data() + names.size());
  return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

namespace {

// The element of `list` named by the request's string field `key`, or a refusal naming it.
template <class T>
T& namedIn(std::vector<T>& list, const Request& request, std::string_view key, const char* what) {
  const std::string& name = request.string(key);
  std::vector<std::string_view> names;
  for (T& element : list) {
    if (element.name == name) return element;
    names.push_back(element.name);
  }
  refuse(std::string(key) + ": no " + what + " named '" + name + "'" + didYouMean(name, names));
}

}  // namespace

FrontendConfig& frontendNamed(Config& config, const Request& request, std::string_view key) {
  return namedIn(config.frontends, request, key, "frontend");
}

BackendConfig& backendNamed(Config& config, const Request& request, std::string_view key) {
  return namedIn(config.backends, request, key, "backend");
}

std::size_t indexOf(const Config& config, const FrontendConfig& frontend) {
  return static_cast<std::size_t>(&frontend - config.frontends.data());
}

// The object goes through its text so that the file's own parser, with every rule and message it
// has, reads it: no second set of rules to keep in step.
void parseAsInFile(
    const nlohmann::json& value, const FileSource& files,
    const std::function<void(config_detail::ParseContext&, const JsonValue&)>& parse) {
  JsonDocument doc = parseJsonc(value.dump());
  if (!doc.root) refuse("internal error: the request does not read back as JSON");
  Config scratch;  // receives only the side files a parse step reads
  config_detail::ParseContext ctx("", files, scratch);
  parse(ctx, *doc.root);
  if (!ctx.hasErrors()) return;
  std::string message;
  for (const ConfigError& e : ctx.takeErrors()) {
    if (!message.empty()) message += "; ";
    message += e.path.empty() ? e.message : e.path + ": " + e.message;
  }
  refuse(message);
}

namespace {

CertificateValidator gCertificateValidator;

}  // namespace

void pass(const ChangeGate& gate, const nlohmann::json& change) {
  if (!gate) return;
  if (std::string why = gate(change); !why.empty()) refuse(why);
}

std::string validateCertificate(const std::string& pem) {
  return gCertificateValidator ? gCertificateValidator(pem) : "";
}

}  // namespace runtime_detail

namespace {

using Command = void (*)(Config&, nlohmann::json&, const FileSource&, const ChangeGate&);

struct CommandEntry {
  std::string_view name;
  Command apply;
};

constexpr CommandEntry kCommands[] = {
    {"server.add", runtime_detail::serverAdd},   {"server.del", runtime_detail::serverDel},
    {"server.set", runtime_detail::serverSet},   {"backend.add", runtime_detail::backendAdd},
    {"backend.del", runtime_detail::backendDel}, {"cert.set", runtime_detail::certSet},
    {"cert.del", runtime_detail::certDel},       {"map.set", runtime_detail::mapSet},
    {"map.del", runtime_detail::mapDel},
};

const CommandEntry* findCommand(std::string_view cmd) {
  for (const CommandEntry& entry : kCommands) {
    if (entry.name == cmd) return &entry;
  }
  return nullptr;
}

// The name an object field carries (a server's, a template's range, a backend's).
std::string nameIn(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_object()) return "?";
  auto text = [&](const char* key) {
    auto it = value.find(key);
    return it == value.end() ? std::string("?")
           : it->is_string() ? it->get<std::string>()
                             : it->dump();
  };
  if (value.contains("template"))
    return text("template") + "[" + text("from") + "-" + text("to") + "]";
  return text("name");
}

}  // namespace

bool isRuntimeChange(std::string_view cmd) {
  return findCommand(cmd) != nullptr;
}

std::string applyRuntimeChange(Config& config, nlohmann::json& change, const FileSource& files,
                               const ChangeGate& gate) {
  if (!change.is_object()) return "expected an object";
  auto cmd = change.find("cmd");
  if (cmd == change.end() || !cmd->is_string()) return "cmd: missing, or not a string";
  const std::string& name = cmd->get_ref<const std::string&>();
  const CommandEntry* entry = findCommand(name);
  if (!entry) {
    std::vector<std::string_view> names;
    for (const CommandEntry& e : kCommands) names.push_back(e.name);
    return "cmd: unknown change '" + name + "'" + runtime_detail::didYouMean(name, names);
  }
  try {
    entry->apply(config, change, files, gate);
    return "";
  } catch (const runtime_detail::ChangeError& e) {
    return e.what();
  } catch (const std::bad_alloc&) {
    return "out of memory";
  } catch (const std::exception& e) {
    // A FileSource callback or the JSON library may throw; the caller is promised a string.
    return std::string("internal error: ") + e.what();
  }
}

std::string describeRuntimeChange(const nlohmann::json& change) {
  if (!change.is_object()) return "?";
  std::string out = change.contains("cmd") ? nameIn(change["cmd"]) : "?";
  for (const char* key : {"frontend", "backend", "server", "name", "path", "host"}) {
    auto it = change.find(key);
    if (it != change.end()) out += " " + nameIn(*it);
  }
  return out;
}

void setCertificateValidator(CertificateValidator validator) {
  runtime_detail::gCertificateValidator = std::move(validator);
}

}  // namespace molt::common
