// `molt ctl`: the runtime API's command-line client.
#pragma once

namespace molt::ctl {

// Runs `molt ctl ARGS...` (argv after "ctl"). Prints a table, or the raw response with --json.
// Returns 0 on {"ok": true}, 1 on {"ok": false}, 2 on a usage or connection error.
int runCtl(int argc, char** argv);

}  // namespace molt::ctl
