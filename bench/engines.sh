#!/usr/bin/env bash
# Raft vs Multi-Paxos on a real 3-node cluster: the same store, transport, log engine
# and fsync policy, only the replication engine differs. For each engine, starts
# `hakv up --consensus ENGINE` (3 processes on 127.0.0.1, fsync on every group commit),
# runs redis-benchmark SET and GET (256-byte values) against the leader at 1, 16 and 64
# clients, and reads every node's /metrics before and after each run to report peer
# messages (transport frames, heartbeats included) per request.
#
#   bench/engines.sh            # prints a Markdown table
#   RUNS=3 bench/engines.sh     # median of 3 runs per cell
#
# Both clusters run side by side (Raft on PORT.., Paxos on PORT+10..), and each cell's
# runs alternate between them, so that a machine whose disk or CPU drifts during the
# minutes of a run weighs on both engines alike.
#
# Needs redis-benchmark (Debian's redis-tools) and curl. Every process it starts is
# stopped at the end, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
PORT=${PORT:-7301}
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }

cargo build --release -q -p hakv
HAKV=./target/release/hakv

UP_PIDS=()
WORK=$(mktemp -d)
cleanup() {
  for pid in "${UP_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Sum of a metric over the three nodes of the cluster at client port $1 (HTTP ports
# are client port + 20000 under `up`).
metric_sum() {
  local base=$1 name=$2 total=0 v
  for i in 0 1 2; do
    v=$(curl -s "http://127.0.0.1:$((base + i + 20000))/metrics" | awk -v n="$name" '$1 ~ "^"n"({|$)" {s+=$2} END {print s+0}')
    total=$((total + ${v%.*}))
  done
  echo "$total"
}

# One redis-benchmark run against the leader's port $2 of the cluster at $1; prints
# "rps p50 p99 msgs_per_commit".
run_one() {
  local base=$1 port=$2 test=$3 clients=$4 n=$5
  local f0 f1 line
  f0=$(metric_sum "$base" hakv_transport_frames_sent_total)
  line=$(redis-benchmark -p "$port" -t "$test" -d 256 -c "$clients" -n "$n" -r 100000 --csv 2>>"$WORK/bench.err" | tail -1)
  case $line in
    '"SET"'*|'"GET"'*) ;;
    *) echo "redis-benchmark failed against port $port:" >&2; tail -5 "$WORK/bench.err" >&2; exit 1 ;;
  esac
  f1=$(metric_sum "$base" hakv_transport_frames_sent_total)
  # Every SET commits one entry, so per request = per committed command for writes.
  local msgs
  msgs=$(awk -v f=$((f1 - f0)) -v n="$n" 'BEGIN {printf "%.2f", f / n}')
  echo "$line" | awk -F'"' -v m="$msgs" '{printf "%s %s %s %s\n", $4, $10, $14, m}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A BASE LPORT
for engine in raft paxos; do
  case $engine in raft) base=$PORT ;; paxos) base=$((PORT + 10)) ;; esac
  BASE[$engine]=$base
  "$HAKV" up --consensus "$engine" --dir "$WORK/$engine" --port "$base" >"$WORK/$engine.log" 2>&1 &
  UP_PIDS+=($!)
  for _ in $(seq 1 300); do grep -q '^ready' "$WORK/$engine.log" && break; sleep 0.1; done
  grep -q '^ready' "$WORK/$engine.log" || { cat "$WORK/$engine.log" >&2; exit 1; }
  leader=$(sed -n 's/.*node \([0-9]*\) leads.*/\1/p' "$WORK/$engine.log" | head -1)
  LPORT[$engine]=$((base + leader - 1))
  # Warm up (connections, first elections' dust) before measuring.
  redis-benchmark -p "${LPORT[$engine]}" -t set -d 256 -c 16 -n 5000 -q >/dev/null 2>&1 || true
done

declare -A ROWS
RATIOS=""
for test in set get; do
  for clients in 1 16 64; do
    # About 6 s per run at every client count: a one-client run of 3,000 requests
    # (2 s) swung by 15% between runs on a VM whose disk drifts.
    case $clients in 1) n=8000 ;; 16) n=50000 ;; *) n=100000 ;; esac
    declare -A results=([raft]="" [paxos]="")
    for _ in $(seq 1 "$RUNS"); do
      for engine in raft paxos; do
        results[$engine]+="$(run_one "${BASE[$engine]}" "${LPORT[$engine]}" "$test" "$clients" "$n")"$'\n'
      done
    done
    declare -A rpsof=()
    for engine in raft paxos; do
      r=${results[$engine]}
      rps=$(printf '%s' "$r" | awk 'NF {print $1}' | median)
      p50=$(printf '%s' "$r" | awk 'NF {print $2}' | median)
      p99=$(printf '%s' "$r" | awk 'NF {print $3}' | median)
      msgs=$(printf '%s' "$r" | awk 'NF {print $4}' | median)
      ROWS[$engine]+="| $engine | ${test^^} | $clients | ${rps%.*} | $p50 | $p99 | $msgs |"$'\n'
      rpsof[$engine]=$rps
    done
    RATIOS+="| ${test^^} | $clients | $(awk -v p="${rpsof[paxos]}" -v r="${rpsof[raft]}" 'BEGIN {printf "%.2f", p / r}') |"$'\n'
  done
done

echo "| engine | test | clients | requests/s | p50 ms | p99 ms | peer messages per request |"
echo "|---|---|---|---|---|---|---|"
printf '%s' "${ROWS[raft]}" "${ROWS[paxos]}"
echo
echo "| test | clients | Multi-Paxos / Raft requests/s |"
echo "|---|---|---|"
printf '%s' "$RATIOS"
