// The reload state machine, driven through its steps seam: no process, socket or file.
#include "master/reload.hpp"

#include <catch2/catch.hpp>
#include <deque>
#include <string>
#include <vector>

using molt::master::BuildOutcome;
using molt::master::Reloader;
using molt::master::ReloadPhase;
using molt::master::ReloadSteps;
using molt::master::UpgradeMode;
using nlohmann::json;

namespace {

// What the master would do, recorded; builds succeed unless told otherwise.
struct FakeMaster {
  uv_loop_t loop{};
  unsigned nextId = 1, serving = 0;
  bool binaryChanged = false;
  bool checkLater = false;  // hold the binary check's answer (pendingCheck) instead of answering
  std::string checkError;   // the check's answer
  std::function<void(const std::string&)> pendingCheck;
  std::deque<BuildOutcome> outcomes;  // the next builds' results (empty: success)
  std::vector<std::string> events;    // "build start", "upgrade SIGUSR2", "ready ...", ...
  std::vector<std::pair<bool, double>> recorded;  // reloads that ended: ok, seconds
  std::vector<json> answers;

  FakeMaster() { uv_loop_init(&loop); }
  ~FakeMaster() {
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }

  ReloadSteps steps() {
    return {[this] { return binaryChanged; },
            [this](std::function<void(const std::string&)> done) {
              events.push_back("check");
              if (checkLater)
                pendingCheck = std::move(done);
              else
                done(checkError);
            },
            [this] { events.push_back("cancel check"); },
            [this](const char* why, const std::vector<molt::master::ApiReply>& waiters) {
              events.push_back(std::string("upgrade ") + why + " with " +
                               std::to_string(waiters.size()) + " waiters");
              return std::string("exec failed (fake)");
            },
            [this](const char* why, bool reload) {
              events.push_back(std::string(reload ? "build " : "start ") + why);
              if (!outcomes.empty()) {
                BuildOutcome o = outcomes.front();
                outcomes.pop_front();
                if (o.generation) ++nextId;
                return o;
              }
              return BuildOutcome{nextId++, {}, {}};
            },
            [this] { return nextId; },
            [this] { return serving; },
            [this](unsigned id, const std::string& why) {
              events.push_back("abandon " + std::to_string(id) + " " + why);
            },
            [this] { return "summary(" + std::to_string(serving) + ")"; },
            [this](const std::string& s) { events.push_back("reloading: " + s); },
            [this](const std::string& s) { events.push_back("ready: " + s); },
            [this] { events.push_back("ended"); },
            [this](bool ok, double seconds) { recorded.emplace_back(ok, seconds); }};
  }
  molt::master::ApiReply waiter() {
    return [this](json answer) { answers.push_back(std::move(answer)); };
  }
  // The supervisor reports generation `id` serving.
  void serve(Reloader& reloader, unsigned id) {
    serving = id;
    reloader.generationServing(id);
  }
  bool saw(const std::string& event) const {
    return std::find(events.begin(), events.end(), event) != events.end();
  }
};

}  // namespace

TEST_CASE("the first start awaits its generation without a timeout and says ready once it serves",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps(), 1);
  REQUIRE(r.start());
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  REQUIRE(r.starting());
  r.onTimeout();  // the first start has none: workers are respawned until they start
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  m.serve(r, 1);
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE_FALSE(r.starting());
  REQUIRE(m.events == std::vector<std::string>{"start start", "ready: summary(1)", "ended"});
  REQUIRE(m.recorded.empty());  // the first start is no reload (metrics)
}

TEST_CASE("a first start that cannot build fails with its errors", "[master][reload]") {
  FakeMaster m;
  m.outcomes.push_back({std::nullopt, {"molt.json:1:2: global.workers: bad"}, {}});
  Reloader r(&m.loop, m.steps());
  REQUIRE_FALSE(r.start());
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(r.lastErrors() == std::vector<std::string>{"molt.json:1:2: global.workers: bad"});
}

TEST_CASE("a reload goes Idle, Building, AwaitingReady and back, answering its waiter",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  m.events.clear();
  r.request("SIGUSR2", m.waiter());
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  REQUIRE(m.events ==
          std::vector<std::string>{"reloading: reloading: starting generation 2", "build SIGUSR2"});
  m.serve(r, 1);  // another generation serving changes nothing
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  m.serve(r, 2);
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == true);
  REQUIRE(m.answers[0]["generation"] == 2);
  REQUIRE(m.saw("ready: summary(2)"));
  REQUIRE(m.events.back() == "ended");
  REQUIRE(m.recorded.size() == 1);
  REQUIRE(m.recorded[0].first);
  REQUIRE(m.recorded[0].second >= 0);
}

TEST_CASE("a reload whose build fails goes back to Idle and reports the errors",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  m.outcomes.push_back({std::nullopt, {"molt.json:3:4: backends[0].name: duplicate"}, {}});
  r.request("api", m.waiter());
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == false);
  REQUIRE(m.answers[0]["error"] == "molt.json:3:4: backends[0].name: duplicate");
  REQUIRE(m.answers[0]["generation"] == 1);
  REQUIRE(m.saw("ready: reload failed: molt.json:3:4: backends[0].name: duplicate; summary(1)"));
  REQUIRE(r.lastErrors().size() == 1);
  REQUIRE(m.recorded.size() == 1);
  REQUIRE_FALSE(m.recorded[0].first);
}

TEST_CASE("requests during a reload coalesce into exactly one more, whose waiters it answers",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  r.request("SIGHUP", m.waiter());  // while starting: queued
  REQUIRE(r.queued());
  m.serve(r, 1);  // the queued reload starts at once
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  REQUIRE_FALSE(r.queued());
  REQUIRE(m.saw("build queued reload"));
  r.request("SIGUSR2", m.waiter());
  r.request("SIGUSR2", m.waiter());
  r.request("api", m.waiter());
  REQUIRE(r.queued());
  m.serve(r, 2);  // the first waiter is answered, the three queued ones wait for generation 3
  REQUIRE(m.answers.size() == 1);
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  m.serve(r, 3);
  REQUIRE(m.answers.size() == 4);
  for (const auto& a : m.answers) REQUIRE(a["ok"] == true);
  REQUIRE(m.answers.back()["generation"] == 3);
  REQUIRE(std::count(m.events.begin(), m.events.end(), "build queued reload") == 2);
  REQUIRE(r.phase() == ReloadPhase::Idle);
}

TEST_CASE("a reload whose generation is not ready in time is abandoned", "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps(), 1);
  REQUIRE(r.start());
  m.serve(r, 1);
  r.request("api", m.waiter());
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  uv_run(&m.loop, UV_RUN_DEFAULT);  // the 1 ms timer is the only thing that runs
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(m.saw("abandon 2 reload abandoned"));
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == false);
  REQUIRE(m.answers[0]["error"] == "generation 2: workers not ready within 0 s; reload abandoned");
  m.serve(r, 2);  // too late: ignored
  REQUIRE(m.answers.size() == 1);
}

TEST_CASE("a changed binary is checked, then exec'd; one that fails leaves the running binary",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  m.events.clear();
  r.request("SIGUSR2", m.waiter());  // unchanged: no check, no upgrade
  REQUIRE(m.events.front() == "reloading: reloading: starting generation 2");
  m.serve(r, 2);

  // Changed: checked, then exec'd with the waiter handed over. The fake's exec fails, so the
  // reload goes on with the running binary and says why the upgrade did not happen.
  m.binaryChanged = true;
  m.events.clear();
  m.answers.clear();
  r.request("SIGUSR2", m.waiter());
  REQUIRE(m.events[0] == "check");
  REQUIRE(m.events[1] == "upgrade SIGUSR2 with 1 waiters");
  REQUIRE(m.answers.empty());  // answered by whichever image serves, once the reload ends
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);
  m.serve(r, 3);
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == true);
  REQUIRE(m.answers[0]["warning"].get<std::string>().find(
              "binary upgrade refused: re-exec: exec failed (fake)") == 0);

  // A binary that fails its check is never exec'd.
  m.checkError = "molt --upgrade-check: exit 1: inventory version 3";
  m.events.clear();
  m.answers.clear();
  r.request("SIGUSR2", m.waiter());
  REQUIRE(std::count(m.events.begin(), m.events.end(), "upgrade SIGUSR2 with 1 waiters") == 0);
  m.serve(r, 4);
  REQUIRE(m.answers[0]["ok"] == true);
  REQUIRE(m.answers[0]["warning"].get<std::string>().find("inventory version 3") !=
          std::string::npos);

  // An upgrade asked for fails whole: no reload is built.
  m.answers.clear();
  m.events.clear();
  r.request("api upgrade", m.waiter(), UpgradeMode::Force);
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == false);
  REQUIRE(m.answers[0]["error"].get<std::string>().find("binary upgrade refused:") == 0);
  REQUIRE_FALSE(m.saw("build api upgrade"));

  // The new image's first reload never checks.
  m.events.clear();
  r.request("binary upgrade", molt::master::ApiReply{}, UpgradeMode::Never);
  REQUIRE_FALSE(m.saw("check"));
  REQUIRE(m.saw("build binary upgrade"));
}

TEST_CASE("while the binary is checked, requests queue and a stop cancels the check",
          "[master][reload]") {
  FakeMaster m;
  m.checkLater = true;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  r.request("api upgrade", m.waiter(), UpgradeMode::Force);
  REQUIRE(r.phase() == ReloadPhase::CheckingBinary);
  r.request("SIGHUP", m.waiter());
  REQUIRE(r.queued());
  // A forced upgrade queued behind the check keeps its force.
  m.pendingCheck("bad binary");
  REQUIRE(m.answers.size() == 1);
  REQUIRE(m.answers[0]["ok"] == false);
  REQUIRE(r.phase() == ReloadPhase::AwaitingReady);  // the queued SIGHUP reload
  m.serve(r, 2);
  REQUIRE(m.answers.size() == 2);
  REQUIRE(m.answers[1]["ok"] == true);
  r.request("api upgrade", m.waiter(), UpgradeMode::Force);
  REQUIRE(r.phase() == ReloadPhase::CheckingBinary);
  r.stop("SIGTERM");
  REQUIRE(m.saw("cancel check"));
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE(m.answers.back()["error"] == "SIGTERM: molt is stopping");
  m.pendingCheck("");  // a late answer changes nothing
  REQUIRE(r.phase() == ReloadPhase::Idle);
}

TEST_CASE("after a failed binary upgrade, the image that took over again answers with the failure",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  r.failWith("binary upgrade failed: the new binary crashed while taking over (signal 06)");
  r.request("binary upgrade", {m.waiter(), m.waiter()}, UpgradeMode::Never);
  m.serve(r, 2);
  REQUIRE(m.answers.size() == 2);
  for (const auto& a : m.answers) {
    REQUIRE(a["ok"] == false);
    REQUIRE(a["error"].get<std::string>().find("crashed while taking over") != std::string::npos);
    REQUIRE(a["generation"] == 2);
  }
  REQUIRE(
      m.saw("ready: binary upgrade failed: the new binary crashed while taking over (signal "
            "06); summary(2)"));
}

TEST_CASE("a successful reload's dropped journal entries are what `errors` shows",
          "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  m.outcomes.push_back({2u, {}, {"runtime change 1 (server.add bk x) dropped: ..."}});
  r.request("api", m.waiter());
  m.serve(r, 2);
  REQUIRE(m.answers[0]["ok"] == true);
  REQUIRE(r.lastErrors() ==
          std::vector<std::string>{"runtime change 1 (server.add bk x) dropped: ..."});
}

TEST_CASE("stopping answers every waiter and refuses later requests", "[master][reload]") {
  FakeMaster m;
  Reloader r(&m.loop, m.steps());
  REQUIRE(r.start());
  m.serve(r, 1);
  r.request("api", m.waiter());
  r.request("api", m.waiter());  // queued
  r.stop("SIGTERM");
  REQUIRE(r.phase() == ReloadPhase::Idle);
  REQUIRE_FALSE(r.queued());
  REQUIRE(m.answers.size() == 2);
  REQUIRE(m.answers[0]["error"] == "SIGTERM: molt is stopping");
  REQUIRE(m.answers[1]["error"] == "molt is stopping");
  r.request("api", m.waiter());
  REQUIRE(m.answers.size() == 3);
  REQUIRE(m.answers[2]["ok"] == false);
  m.serve(r, 2);  // the abandoned reload's generation: nothing happens
  REQUIRE(m.answers.size() == 3);
}
