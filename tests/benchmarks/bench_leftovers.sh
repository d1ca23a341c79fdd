#!/usr/bin/env bash
# Leftovers of killed runs: N `posrig run -k 0210-lost` runs, each SIGKILLed mid-scenario; counts what each left
# (named namespaces, posrig iptables rules, processes) right after its kill, then what remains of all of them once
# the next posrig command has started (`posrig doctor --clean`, as the start of `posrig run` does). Goal: 0.
#   sudo tests/benchmarks/bench_leftovers.sh [N=10]
set -uo pipefail
cd "$(dirname "$0")/../.."
N="${1:-10}"
PY=.venv/bin/python
WORK="$(mktemp -d /tmp/posrig-leftovers.XXXXXX)"
PIDS=()
count() {   # run pids -> one line of counts
  local ns=0 rules=0 inside=0 root_rules=0 files=0 p n r i
  for p in "$@"; do
    for n in $(ip netns list | awk '{print $1}' | grep "^posrig-$p-"); do
      ns=$((ns + 1))
      r=$(ip netns exec "$n" iptables-save 2>/dev/null | grep -c posrig); rules=$((rules + r))
      i=$(ip netns pids "$n" 2>/dev/null | wc -l); inside=$((inside + i))
    done
    r=$(iptables-save | grep -c "posrig-$p"); root_rules=$((root_rules + r))
    r=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name "posrig-$p-*" | wc -l); files=$((files + r))
  done
  local procs
  procs=$(ps -eo pid,cmd | grep -F "$WORK" | grep -v grep | wc -l)
  echo "named namespaces $ns (processes inside $inside), posrig iptables rules $((rules + root_rules)) (inside $rules, root $root_rules), harness processes $procs, temp files $files"
}
for i in $(seq 1 "$N"); do
  $PY -m harness.cli run -k 0210-lost --report "$WORK/r$i" > "$WORK/run$i.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  sleep $((2 + i % 3))
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  echo "run $i (pid $pid) SIGKILLed: $(count "$pid")"
done
echo "all $N before the next command: $(count "${PIDS[@]}")"
$PY -m harness.cli doctor --clean > "$WORK/clean.log" 2>&1; grep -m1 cleaned "$WORK/clean.log"
echo "all $N after the next command (posrig doctor --clean): $(count "${PIDS[@]}")"
rm -rf "$WORK"
