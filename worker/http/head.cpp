#include "worker/http/head.hpp"

#include <array>

#include "worker/net/spares.hpp"

namespace molt::worker {
namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

struct Known {
  std::string_view name;  // lower-case
  FieldKind kind;
};

constexpr Known kKnown[] = {
    {"host", FieldKind::Host},
    {"content-length", FieldKind::ContentLength},
    {"transfer-encoding", FieldKind::TransferEncoding},
    {"connection", FieldKind::Connection},
    {"keep-alive", FieldKind::KeepAlive},
    {"proxy-connection", FieldKind::ProxyConnection},
    {"te", FieldKind::Te},
    {"trailer", FieldKind::Trailer},
    {"upgrade", FieldKind::Upgrade},
    {"x-forwarded-for", FieldKind::XForwardedFor},
    {"x-forwarded-proto", FieldKind::XForwardedProto},
    {"x-forwarded-host", FieldKind::XForwardedHost},
};

// The lengths of kKnown's names.
constexpr auto kKnownLength = [] {
  std::array<bool, 18> t{};
  for (const Known& k : kKnown) t[k.name.size()] = true;
  return t;
}();

// `name` equals `lowerName` (already lower-case) ignoring case.
bool equalsLowerCase(std::string_view name, std::string_view lowerName) {
  for (std::size_t i = 0; i < name.size(); ++i)
    if (lower(name[i]) != lowerName[i]) return false;
  return true;
}

}  // namespace

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

FieldKind classifyField(std::string_view name) {
  // Most fields are none of these: the length alone rules most out, then the first letter.
  if (name.size() >= kKnownLength.size() || !kKnownLength[name.size()]) return FieldKind::Other;
  const char first = lower(name[0]);
  for (const Known& k : kKnown)
    if (k.name.size() == name.size() && k.name[0] == first && equalsLowerCase(name, k.name))
      return k.kind;
  return FieldKind::Other;
}

std::string_view targetAuthority(std::string_view target) {
  if (target.empty() || target[0] == '/') return {};
  std::size_t scheme = target.find("://");
  if (scheme == std::string_view::npos) return {};
  std::string_view rest = target.substr(scheme + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

namespace {

// Where the path of `target` ends: at '?', '#' or its end. A plain loop: find_first_of looks
// every byte up in the set with memchr.
std::size_t pathEnd(std::string_view target) {
  for (std::size_t i = 0; i < target.size(); ++i)
    if (target[i] == '?' || target[i] == '#') return i;
  return target.size();
}

}  // namespace

std::string_view targetPath(std::string_view target) {
  if (!target.empty() && target[0] != '/') {
    std::size_t scheme = target.find("://");
    if (scheme == std::string_view::npos) return target;  // "*"
    target.remove_prefix(scheme + 3);
    std::size_t slash = target.find_first_of("/?#");
    target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
    if (target.empty() || target[0] != '/') return "/";
  }
  return target.substr(0, pathEnd(target));
}

HttpHead::~HttpHead() {
  spares::Buffers<std::string, HttpHead>::give(bytes_);
  spares::Buffers<std::vector<HttpField>, HttpHead>::give(fields_);
}

void HttpHead::clear() {
  bytes_.clear();
  fields_.clear();
  spares::Buffers<std::string, HttpHead>::take(bytes_);
  spares::Buffers<std::vector<HttpField>, HttpHead>::take(fields_);
  method_ = {};
  targetAt_ = targetLength_ = reasonAt_ = reasonLength_ = 0;
  status_ = 0;
  versionMinor_ = 1;
  chunked = hasLength = keepAlive = upgrade = bodyUntilEof = false;
  length = 0;
}

const HttpField* HttpHead::find(FieldKind kind) const {
  for (const HttpField& f : fields_)
    if (f.kind == kind) return &f;
  return nullptr;
}

unsigned HttpHead::count(FieldKind kind) const {
  unsigned n = 0;
  for (const HttpField& f : fields_) n += f.kind == kind;
  return n;
}

}  // namespace molt::worker
