#!/usr/bin/env bash
# A/B of two hakv builds on a 3-node cluster: the same load against each, in
# alternation (A, B, A, B, ...), so that a VM whose disk or CPU drifts during the
# minutes of the comparison weighs on both alike. Prints the median and the spread of
# throughput and latency of each, per in-flight level, and the B/A ratio of the medians.
#
#   bench/ab.sh OLD_BIN NEW_BIN                         # writes at 1 and 50 in flight, 5 pairs
#   bench/ab.sh OLD NEW --pairs 7 --inflight "1 10 50" --read-ratio 1
#   bench/ab.sh OLD NEW --inflight 200 --pipeline 4      # 50 connections x 4 pipelined
#   bench/ab.sh OLD NEW -- --unsafe-no-fsync            # flags after -- go to every server
#
# Each run starts a fresh cluster (`hakv up` with the binary under test, in a temporary
# directory), finds the leader, preloads the key space, measures one window against the
# leader with `hakv bench` (of binary A, so the generator is the same for both) and
# stops the cluster. Needs redis-cli (Debian's redis-tools) to find the leader. Every
# process it starts is stopped at the end, also on Ctrl-C.
set -euo pipefail

usage() { sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
[ $# -ge 2 ] || usage 1
case $1 in -h|--help) usage ;; esac
A=$(realpath "$1"); B=$(realpath "$2"); shift 2
PAIRS=5; INFLIGHT="1 50"; PIPELINE=1; DURATION=8s; WARMUP=2s; READ_RATIO=0; PORT=7401; SERVER_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --pairs) PAIRS=$2; shift ;;
    --inflight) INFLIGHT=$2; shift ;;
    --pipeline) PIPELINE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --read-ratio) READ_RATIO=$2; shift ;;
    --port) PORT=$2; shift ;;
    --) shift; SERVER_ARGS=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown option $1" >&2; usage 1 ;;
  esac
  shift
done
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }; done
command -v redis-cli >/dev/null || { echo "needs redis-cli (apt-get install redis-tools)" >&2; exit 1; }

WORK=$(mktemp -d)
UP=""
stop_cluster() {
  if [ -n "$UP" ]; then kill -TERM "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; UP=""; fi
}
trap 'stop_cluster; rm -rf "$WORK"' EXIT INT TERM

# One measured run of binary $1 at $2 in flight; appends "ops_per_sec p50 p99" to $3.
run_one() {
  local bin=$1 inflight=$2 out=$3 leader="" p
  rm -rf "$WORK/data"
  "$bin" up --dir "$WORK/data" --port "$PORT" -- "${SERVER_ARGS[@]}" >"$WORK/up.log" 2>&1 &
  UP=$!
  for _ in $(seq 1 300); do grep -q '^ready' "$WORK/up.log" && break; sleep 0.1; done
  grep -q '^ready' "$WORK/up.log" || { cat "$WORK/up.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    for p in $PORT $((PORT + 1)) $((PORT + 2)); do
      if redis-cli -p "$p" info replication 2>/dev/null | grep -q role:master; then leader=$p; break 2; fi
    done
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
  "$A" bench "resp://127.0.0.1:$leader" -q --preload --duration 0 -k 100000 -d 256 -c 50 >/dev/null
  "$A" bench "resp://127.0.0.1:$leader" -q -k 100000 -d 256 -c "$(( (inflight + PIPELINE - 1) / PIPELINE ))" \
    -P "$PIPELINE" -r "$READ_RATIO" \
    --duration "$DURATION" --warmup "$WARMUP" --json "$WORK/run.json" >/dev/null
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency"]["all"]; print(d["ops_per_sec"], l["p50_ms"], l["p99_ms"])' \
    "$WORK/run.json" >>"$out"
  stop_cluster
}

echo "A: $A"
echo "B: $B"
echo "$PAIRS pairs per level, $DURATION (+$WARMUP warm-up), $PIPELINE pipelined per connection, read ratio $READ_RATIO, server flags: ${SERVER_ARGS[*]:-(none)}"
echo
echo "| in flight | build | ops/s median (min–max) | p50 ms median (min–max) | p99 ms median |"
echo "|---|---|---|---|---|"
for inflight in $INFLIGHT; do
  : >"$WORK/a.txt"; : >"$WORK/b.txt"
  for i in $(seq 1 "$PAIRS"); do
    run_one "$A" "$inflight" "$WORK/a.txt"
    run_one "$B" "$inflight" "$WORK/b.txt"
    echo "   [$inflight in flight, pair $i/$PAIRS] A $(tail -1 "$WORK/a.txt")   B $(tail -1 "$WORK/b.txt")" >&2
  done
  python3 - "$inflight" "$WORK/a.txt" "$WORK/b.txt" <<'EOF'
import statistics, sys
inflight, files = sys.argv[1], sys.argv[2:]
med = {}
for name, f in zip("AB", files):
    rows = [list(map(float, l.split())) for l in open(f) if l.strip()]
    ops, p50, p99 = ([r[i] for r in rows] for i in range(3))
    med[name] = (statistics.median(ops), statistics.median(p50))
    print(f"| {inflight} | {name} | {statistics.median(ops):,.0f} ({min(ops):,.0f}–{max(ops):,.0f}) "
          f"| {statistics.median(p50):.3f} ({min(p50):.3f}–{max(p50):.3f}) | {statistics.median(p99):.2f} |")
print(f"| {inflight} | B/A | {med['B'][0] / med['A'][0]:.2f}× | {med['B'][1] / med['A'][1]:.2f}× | |")
EOF
done
