# Shared helpers for bench/ scripts (sourced, not run). Every process a benchmark starts is
# recorded with bench_track and stopped by pid in bench_cleanup (installed as an EXIT trap).
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_PIDS=()

# Installs the Debian packages named, if missing (benchmarks run as root, like the tests).
bench_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Where the molt binaries come from: build/ (built by the project's setup script), or an
# existing build directory named by MOLT_BUILD.
MOLT_BUILD=${MOLT_BUILD:-$BENCH_ROOT/build}

# Builds molt (and installs its build dependencies) through the project's own setup script.
bench_build() {
  if [[ $MOLT_BUILD == "$BENCH_ROOT/build" ]]; then "$BENCH_ROOT/scripts/setup" >/dev/null; fi
}

bench_track() { BENCH_PIDS+=("$@"); }

# Stops every tracked process: TERM, then KILL for what is left after 2 s.
bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    local alive=0
    for pid in "${BENCH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${BENCH_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  BENCH_PIDS=()
}

# Prints the pids of PID and all its descendants.
bench_tree() {
  local pid=$1 child
  echo "$pid"
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do bench_tree "$child"; done
}

# CPU time (user and system, in clock ticks) used so far by a process tree: "user sys".
bench_tree_ticks() {  # PID
  local user=0 sys=0 pid u t
  for pid in $(bench_tree "$1"); do
    read -r u t < <(awk '{print $14, $15}' /proc/"$pid"/stat 2>/dev/null || echo "0 0")
    user=$((user + u))
    sys=$((sys + t))
  done
  echo "$user $sys"
}

# The median of the numbers on stdin (separated by spaces or newlines).
bench_median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# Sums a /proc/PID/smaps_rollup field (kB) over a process tree: bench_sum_kb PID Pss
bench_sum_kb() {
  local total=0 pid value
  for pid in $(bench_tree "$1"); do
    value=$(awk -v k="$2:" '$1 == k {print $2}' /proc/"$pid"/smaps_rollup 2>/dev/null || echo 0)
    total=$((total + ${value:-0}))
  done
  echo "$total"
}

# Waits until a request through 127.0.0.1:PORT gets an HTTP answer (a listening socket alone
# proves nothing: the kernel accepts before a proxy's workers are ready); prints the seconds
# since START (from `date +%s.%N`). Fails after BENCH_READY_TIMEOUT seconds (default 300).
bench_wait_http() {  # PORT START PID
  local port=$1 start=$2 pid=$3 limit=${BENCH_READY_TIMEOUT:-300} line
  local deadline=$(( $(date +%s) + limit ))
  while (( $(date +%s) < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: process $pid exited before serving" >&2
      return 1
    fi
    line=$(timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null || true)
    if [[ $line == HTTP/1.?" "* ]]; then
      echo "$(date +%s.%N) - $start" | bc
      return 0
    fi
    sleep 0.005
  done
  echo "bench: no HTTP answer through 127.0.0.1:$port after $limit s" >&2
  return 1
}

# A free loopback port (the kernel's choice).
bench_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
