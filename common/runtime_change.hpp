// Runtime changes: the runtime API's commands that change a running config without a reload
// (server.*, backend.*, cert.*, map.*; docs/api.md), applied to the config model.
//
// The master applies a change to its copy of the serving generation's Config, and records it in
// its journal (master/journal.hpp), which it replays over every freshly parsed config (reload,
// binary upgrade, restart with global.state_file). Workers replay the journal their handover
// bundle carries (common/journal_text.hpp). A change request is the API request object itself:
// {"cmd": "server.add", "backend": "bk_1", "server": {...}}.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/config.hpp"

namespace molt::common {

// True for the commands applyRuntimeChange knows.
bool isRuntimeChange(std::string_view cmd);

// Called by applyRuntimeChange with the change in its journalled form once it is validated, just
// before the config is touched: a non-empty answer refuses the change with that line, `config`
// untouched (the master saves global.state_file here, so a change it cannot keep never applies).
using ChangeGate = std::function<std::string(const nlohmann::json& change)>;

// Validates `change` against `config` and applies it. Returns "" on success, else one line
// naming the field at fault and why ("server.address: port out of range"; several problems of one
// server or backend object are joined with "; "), `config` then being untouched: the change is
// validated fully before anything is mutated, and the config is never copied (it may hold a
// million servers). On success `change` may be rewritten to a self-contained equivalent that
// replays the same (cert.set's "path" becomes the "pem" it read through `files`; map.set's host
// is lower-cased): journal that form. Never throws but std::bad_alloc is reported as an error.
// Any process may call it; without a certificate validator installed, PEM text is not checked.
std::string applyRuntimeChange(Config& config, nlohmann::json& change, const FileSource& files,
                               const ChangeGate& gate = {});

// "server.add bk_1 web3": the command and the names it acts on, for logs and journal conflicts.
std::string describeRuntimeChange(const nlohmann::json& change);

// Checks the PEM text of a cert.set (certificate, chain, private key matching it) with code
// common/ cannot link (OpenSSL). Returns "" when it is usable, else the reason.
using CertificateValidator = std::function<std::string(const std::string& pem)>;

// Installs the validator every later cert.set runs (process-wide; main() sets it in the master).
void setCertificateValidator(CertificateValidator validator);

}  // namespace molt::common
