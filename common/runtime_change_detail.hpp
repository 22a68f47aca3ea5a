// Internal to the runtime changes (common/runtime_change*.cpp): the request reader, the lookups
// every command shares, and one function per command. A command validates everything, refusing by
// throwing ChangeError, before it mutates the config.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/config.hpp"
#include "common/config_parse.hpp"
#include "common/runtime_change.hpp"

namespace molt::common::runtime_detail {

// Why a change is refused: "field: reason", returned by applyRuntimeChange.
class ChangeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void refuse(const std::string& message);

// The fields of one change request. Each accessor refuses with the field's name when the field is
// required and missing, or of the wrong type.
class Request {
 public:
  // Refuses a key not in `known` ("cmd" is always known).
  Request(const nlohmann::json& change, std::initializer_list<std::string_view> known);

  const std::string& cmd() const { return cmd_; }
  bool has(std::string_view key) const;
  const nlohmann::json& value(std::string_view key) const;  // required, any type
  const std::string& string(std::string_view key) const;    // required
  const std::string* optionalString(std::string_view key) const;
  std::optional<std::int64_t> optionalInteger(std::string_view key, std::int64_t min,
                                              std::int64_t max) const;

 private:
  const nlohmann::json& change_;
  std::string cmd_;
};

// " (did you mean 'x'?)" for the closest of `names`, or "".
std::string didYouMean(std::string_view word, const std::vector<std::string_view>& names);

// The frontend or backend named by the request's string field `key`, or a refusal naming it.
FrontendConfig& frontendNamed(Config& config, const Request& request, std::string_view key);
BackendConfig& backendNamed(Config& config, const Request& request, std::string_view key);
// The index in config.frontends of a frontend of `config`.
std::size_t indexOf(const Config& config, const FrontendConfig& frontend);

// Parses `value` as the config file parses such an object: `parse` runs one config_detail step
// over it, with error paths starting at its own argument. Refuses with every problem found, each
// as "path: message", joined with "; ".
void parseAsInFile(
    const nlohmann::json& value, const FileSource& files,
    const std::function<void(config_detail::ParseContext&, const JsonValue&)>& parse);

// Asks `gate` (when set) whether the validated `change` may apply; refuses with its answer. Every
// command calls it once, after its last check and its last rewrite of `change`, before it mutates.
void pass(const ChangeGate& gate, const nlohmann::json& change);

// The certificate validator installed by setCertificateValidator; "" when none is.
std::string validateCertificate(const std::string& pem);

void serverAdd(Config& config, nlohmann::json& change, const FileSource& files,
               const ChangeGate& gate);
void serverDel(Config& config, nlohmann::json& change, const FileSource& files,
               const ChangeGate& gate);
void serverSet(Config& config, nlohmann::json& change, const FileSource& files,
               const ChangeGate& gate);
void backendAdd(Config& config, nlohmann::json& change, const FileSource& files,
                const ChangeGate& gate);
void backendDel(Config& config, nlohmann::json& change, const FileSource& files,
                const ChangeGate& gate);
void certSet(Config& config, nlohmann::json& change, const FileSource& files,
             const ChangeGate& gate);
void certDel(Config& config, nlohmann::json& change, const FileSource& files,
             const ChangeGate& gate);
void mapSet(Config& config, nlohmann::json& change, const FileSource& files,
            const ChangeGate& gate);
void mapDel(Config& config, nlohmann::json& change, const FileSource& files,
            const ChangeGate& gate);

}  // namespace molt::common::runtime_detail
