#pragma once
// The control protocol's field reader, shared by the files that decode its messages
// (control_messages.cpp, control_migration.cpp); not part of the protocol's interface.

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "common/control_messages.hpp"

namespace molt::common::control::detail {

// Reads the fields of one message, keeping the first problem as "type: field: what".
class Fields {
 public:
  Fields(ControlMessage& message, std::string_view type, std::size_t fds)
      : Fields(message, type, fds, fds) {}
  // A message whose descriptor count depends on a field: between minFds and maxFds here, the
  // exact count checked by the caller (expectFds).
  Fields(ControlMessage& message, std::string_view type, std::size_t minFds, std::size_t maxFds)
      : message_(message), type_(type) {
    if (message.fds.size() < minFds || message.fds.size() > maxFds) expectFds(minFds);
  }
  void expectFds(std::size_t fds) {
    if (message_.fds.size() != fds)
      fail("", "expected " + std::to_string(fds) + " descriptor(s), got " +
                   std::to_string(message_.fds.size()));
  }
  // True when `key` is present (for fields an older peer does not send).
  bool has(const char* key) const { return message_.body.contains(key); }
  // For a change's operation: its fields are read from the same body.
  const nlohmann::json& body() const { return message_.body; }

  std::string string(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return {};
    if (!v->is_string()) return fail(key, "expected a string"), std::string();
    return v->get<std::string>();
  }

  template <class T>
  T integer(const char* key, T min = std::numeric_limits<T>::min(),
            T max = std::numeric_limits<T>::max()) {
    const nlohmann::json* v = find(key);
    if (!v) return T{};
    bool fits = false;
    if (!v->is_number_integer()) return fail(key, "expected an integer"), T{};
    if (v->is_number_unsigned() || v->get<std::int64_t>() >= 0) {
      auto n = v->get<std::uint64_t>();
      fits = n <= static_cast<std::uint64_t>(max) &&
             (min <= 0 || n >= static_cast<std::uint64_t>(min));
    } else {
      auto n = v->get<std::int64_t>();
      fits = std::numeric_limits<T>::is_signed && n >= static_cast<std::int64_t>(min);
    }
    if (!fits)
      return fail(key, "out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"),
             T{};
    return v->get<T>();
  }

  bool boolean(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return false;
    if (!v->is_boolean()) return fail(key, "expected true or false"), false;
    return v->get<bool>();
  }

  nlohmann::json object(const char* key) {
    const nlohmann::json* v = find(key);
    if (!v) return nullptr;
    if (!v->is_object()) return fail(key, "expected an object"), nullptr;
    return *v;
  }

  UniqueFd fd(std::size_t index) {
    return index < message_.fds.size() ? std::move(message_.fds[index]) : UniqueFd();
  }

  void fail(std::string_view key, const std::string& what) {
    if (!error_.empty()) return;
    error_ = std::string(type_) + ": ";
    if (!key.empty()) error_ += std::string(key) + ": ";
    error_ += what;
  }

  template <class T>
  Decoded<T> finish(T&& value) {
    Decoded<T> out;
    if (error_.empty())
      out.value.emplace(std::move(value));
    else
      out.error = std::move(error_);
    return out;
  }

 private:
  const nlohmann::json* find(const char* key) {
    auto it = message_.body.find(key);
    if (it == message_.body.end()) {
      fail(key, "missing");
      return nullptr;
    }
    return &*it;
  }

  ControlMessage& message_;
  std::string_view type_;
  std::string error_;
};

inline ControlMessage make(std::string_view type, nlohmann::json body = nlohmann::json::object()) {
  ControlMessage m;
  m.body = std::move(body);
  m.body["type"] = type;
  return m;
}

inline ControlMessage withFd(ControlMessage m, UniqueFd fd) {
  m.fds.push_back(std::move(fd));
  return m;
}

}  // namespace molt::common::control::detail
