#!/usr/bin/env bash
# hakv side by side with etcd and Redis, on this machine, all durable.
#
# Starts, all on 127.0.0.1:
#   * a 3-node etcd cluster (Debian's etcd-server; fsync of its WAL on every commit,
#     which etcd always does),
#   * one Redis with `appendonly yes` and `appendfsync always`,
#   * a 3-node hakv cluster (`hakv up`, fsync on every group commit),
# loads each key space once (--preload), then drives each system with the same
# `hakv bench` workload, in alternation (etcd, Redis, hakv, etcd, ...):
#   loads      write (SET / Put), read (linearizable GET / Range), mix (90% reads)
#   in flight  1, 10, 50, 200 (connections x pipeline: 1x1, 10x1, 50x1, 50x4)
# RUNS runs of each, always against the leader. While each run's measured window
# lasts, it samples the CPU time of every process of each system (/proc/PID/stat)
# and the generator's own. Then bench/report.py prints a Markdown table of the
# medians (ops/s, ratios hakv/etcd and hakv/Redis, p50/p99, server CPU per
# operation) and draws the plots.
#
#   bench/compare.sh                 # 3 runs x 10 s (+2 s warm-up) per cell: about 25 minutes
#   bench/compare.sh --quick         # 1 run x 3 s (+1 s warm-up): about 4 minutes
#   bench/compare.sh --runs 5 --duration 20s --out /tmp/cmp
#
# Options: --quick, --runs N, --duration D, --warmup D, --keys N, --value-size B,
# --inflight "1 10 50 200", --loads "write read mix", --systems "etcd redis hakv" (which to
# load; all three are started),
# --out DIR (default bench/results: raw/*.json, results.json, table.md, *.png),
# --keep (leave the data directories), --no-install.
# Env: HAKV_BIN (a prebuilt hakv binary; otherwise `cargo build --release -p hakv`),
# HAKV_DESC (how to name that binary's version in machine.txt; default: the git commit).
#
# Installs what is missing with apt-get (etcd-server, redis-server, curl,
# python3-matplotlib). Every process it starts is stopped at the end, also on
# Ctrl-C or an error.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DURATION=10s
WARMUP=2s
KEYS=100000
VALUE=256
INFLIGHT="1 10 50 200"
LOADS="write read mix"
SYSTEMS="etcd redis hakv"
OUT=bench/results
KEEP=0
INSTALL=1
while [ $# -gt 0 ]; do
  case $1 in
    --quick) RUNS=1; DURATION=3s; WARMUP=1s ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --value-size) VALUE=$2; shift ;;
    --inflight) INFLIGHT=$2; shift ;;
    --loads) LOADS=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Ports, away from the packages' defaults (2379, 6379) and from `hakv up`'s 7001.
ETCD_PORT=${ETCD_PORT:-12379}   # member i: client 12379+2i, peer 12380+2i
REDIS_PORT=${REDIS_PORT:-16379}
HAKV_PORT=${HAKV_PORT:-9101}   # node i: 9101+i-1 (peer +10000, HTTP +20000: below the ephemeral range, which starts at 32768)

# --- what is missing --------------------------------------------------------
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$INSTALL" = 0 ]; then echo "missing: ${need[*]} (run without --no-install)" >&2; exit 1; fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  # The packages may start system instances (2379, 6379); this script runs its own.
  $SUDO service etcd stop >/dev/null 2>&1 || true
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi

if [ -z "${HAKV_BIN:-}" ]; then
  echo "== cargo build --release -p hakv"
  cargo build --release -q -p hakv
  HAKV_BIN=target/release/hakv
fi
HAKV_BIN=$(realpath "$HAKV_BIN")

# Data on the repository's disk (not a tmpfs: fsync must mean something).
mkdir -p target
WORK=$(mktemp -d "$PWD/target/compare.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then echo "data and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
  echo "warning: $WORK is on a tmpfs, fsync costs nothing there" >&2
fi

# --- start the three systems ------------------------------------------------
echo "== starting a 3-node etcd, Redis (appendfsync always), a 3-node hakv in $WORK"
cluster=""
for i in 0 1 2; do
  cluster+="${cluster:+,}e$i=http://127.0.0.1:$((ETCD_PORT + 2 * i + 1))"
done
ETCD_PIDS=()
for i in 0 1 2; do
  c=$((ETCD_PORT + 2 * i)); p=$((c + 1))
  mkdir -p "$WORK/etcd"
  # Compaction every minute and a large quota keep the MVCC history of a long
  # write benchmark from filling the default 2 GB quota.
  etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$cluster" --initial-cluster-token hakv-compare --initial-cluster-state new \
    --auto-compaction-mode periodic --auto-compaction-retention 1m \
    --quota-backend-bytes 8589934592 >"$WORK/etcd/e$i.log" 2>&1 &
  PIDS+=($!); ETCD_PIDS+=($!)
done

mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no \
  --logfile "$WORK/redis/redis.log" >/dev/null 2>&1 &
PIDS+=($!); REDIS_PIDS=($!)

"$HAKV_BIN" up --dir "$WORK/hakv" --port "$HAKV_PORT" >"$WORK/hakv-up.log" 2>&1 &
UP_PID=$!
PIDS+=($UP_PID)

# The current leaders (asked again before every run: leadership may move under load).
etcd_leader() {
  local i c st
  for i in 0 1 2; do
    c=$((ETCD_PORT + 2 * i))
    st=$(curl -s -m 1 -X POST "http://127.0.0.1:$c/v3/maintenance/status" -d '{}' || true)
    if [ -n "$st" ] && /usr/bin/python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s.get("leader") and s["leader"]==s["header"]["member_id"] else 1)' "$st" 2>/dev/null; then
      echo "127.0.0.1:$c"; return
    fi
  done
}
hakv_leader() {
  local i
  for i in 0 1 2; do
    if curl -s -m 1 "http://127.0.0.1:$((HAKV_PORT + i + 20000))/health" | grep -q 'role=Leader'; then
      echo "127.0.0.1:$((HAKV_PORT + i))"; return
    fi
  done
}
wait_leader() {
  local l=""
  for _ in $(seq 1 300); do l=$("${1}_leader"); [ -n "$l" ] && break; sleep 0.1; done
  [ -n "$l" ] || { echo "$1 has no leader" >&2; exit 1; }
  echo "$l"
}

ETCD_LEADER=$(wait_leader etcd)
for _ in $(seq 1 300); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping | grep -q PONG || { echo "redis did not start" >&2; cat "$WORK/redis/redis.log" >&2; exit 1; }

for _ in $(seq 1 300); do grep -q '^ready' "$WORK/hakv-up.log" && break; sleep 0.1; done
grep -q '^ready' "$WORK/hakv-up.log" || { echo "hakv did not start" >&2; cat "$WORK/hakv-up.log" >&2; exit 1; }
HAKV_LEADER=$(wait_leader hakv)
HAKV_PIDS=($(ps -o pid= --ppid "$UP_PID"))
[ ${#HAKV_PIDS[@]} -eq 3 ] || { echo "expected 3 hakv nodes under pid $UP_PID, found ${HAKV_PIDS[*]}" >&2; exit 1; }

echo "   etcd leader $ETCD_LEADER (pids ${ETCD_PIDS[*]}), redis 127.0.0.1:$REDIS_PORT (pid ${REDIS_PIDS[*]}), hakv leader $HAKV_LEADER (pids ${HAKV_PIDS[*]})"

# The endpoint to load: the current leader of etcd and hakv.
target_of() {
  case $1 in
    etcd) echo "etcd://$(wait_leader etcd)" ;;
    redis) echo "resp://127.0.0.1:$REDIS_PORT" ;;
    hakv) echo "resp://$(wait_leader hakv)" ;;
  esac
}
pids_of() {
  case $1 in
    etcd) echo "${ETCD_PIDS[*]}" ;;
    redis) echo "${REDIS_PIDS[*]}" ;;
    hakv) echo "${HAKV_PIDS[*]}" ;;
  esac
}
# CPU seconds (user + system, every thread) used so far by the given processes.
TICKS=$(getconf CLK_TCK)
cpu_of() {
  local total=0 p f
  for p in "$@"; do
    # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
    f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || f=0
    total=$((total + ${f:-0}))
  done
  awk -v t="$total" -v hz="$TICKS" 'BEGIN {printf "%.3f", t / hz}'
}
secs() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) {sub(/ms$/, "", d); print d / 1000} else if (d ~ /m$/) {sub(/m$/, "", d); print d * 60} else {sub(/s$/, "", d); print d + 0} }'; }
WARMUP_S=$(secs "$WARMUP")

mkdir -p "$OUT/raw"
rm -f "$OUT"/raw/*.json

echo "== preloading $KEYS keys of $VALUE bytes into each"
for sys in $SYSTEMS; do
  "$HAKV_BIN" bench "$(target_of "$sys")" --preload --duration 0 -q -k "$KEYS" -d "$VALUE" -c 50 >"$WORK/preload-$sys.txt" 2>&1 \
    || { echo "preload of $sys failed" >&2; cat "$WORK/preload-$sys.txt" >&2; exit 1; }
done

shape() {
  case $1 in
    1) echo "-c 1 -P 1" ;; 10) echo "-c 10 -P 1" ;; 50) echo "-c 50 -P 1" ;; 200) echo "-c 50 -P 4" ;;
    *) if [ "$1" -le 50 ]; then echo "-c $1 -P 1"; else echo "-c 50 -P $(( ($1 + 49) / 50 ))"; fi ;;
  esac
}
ratio() { case $1 in write) echo 0 ;; read) echo 1 ;; mix) echo 0.9 ;; *) echo "unknown load $1" >&2; exit 2 ;; esac; }

n_cells=$(( $(wc -w <<<"$LOADS") * $(wc -w <<<"$INFLIGHT") * RUNS * $(wc -w <<<"$SYSTEMS") ))
echo "== $n_cells runs of $DURATION (+$WARMUP warm-up) each"
k=0
for load in $LOADS; do
  for inflight in $INFLIGHT; do
    for run in $(seq 1 "$RUNS"); do
      for sys in $SYSTEMS; do
        k=$((k + 1))
        json="$OUT/raw/$sys-$load-$inflight-$run.json"
        target=$(target_of "$sys")
        # shellcheck disable=SC2046
        "$HAKV_BIN" bench "$target" $(shape "$inflight") -r "$(ratio "$load")" \
          -k "$KEYS" -d "$VALUE" --duration "$DURATION" --warmup "$WARMUP" --seed "$run" \
          -q --json "$json" >"$WORK/last.txt" 2>&1 &
        bpid=$!
        sleep "$WARMUP_S"
        c0=$(cpu_of $(pids_of "$sys")); t0=$(date +%s.%N)
        wait "$bpid" || { echo "bench failed:" >&2; cat "$WORK/last.txt" >&2; exit 1; }
        c1=$(cpu_of $(pids_of "$sys")); t1=$(date +%s.%N)
        # Add the servers' CPU over the measured window to the generator's JSON.
        /usr/bin/python3 - "$json" "$sys" "$load" "$inflight" "$run" "$c0" "$c1" "$t0" "$t1" "$target" <<'PY'
import json, sys
path, system, load, inflight, run, c0, c1, t0, t1, target = sys.argv[1:]
r = json.load(open(path))
r["compare"] = {"system": system, "load": load, "in_flight": int(inflight), "run": int(run), "target": target,
                "server_cpu_s": float(c1) - float(c0), "window_s": float(t1) - float(t0)}
json.dump(r, open(path, "w"), indent=1)
PY
        printf '   [%3d/%d] %-5s %-5s %3s in flight  run %d  %-22s %s\n' "$k" "$n_cells" "$sys" "$load" "$inflight" "$run" "${target#*://}" \
          "$(sed -n 's/^throughput \([0-9]*\) ops\/s  *ops [0-9]*  *errors \([0-9]*\) .*/\1 ops\/s, \2 errors/p' "$WORK/last.txt")"
      done
    done
  done
done

# The machine, for the record.
{
  echo "cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1) x $(nproc)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "os: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "disk: $(df -hT "$WORK" | awk 'NR==2 {print $1, $3, "(" $2 ")"}')"
  echo "etcd: $(etcd --version | head -1)"
  echo "redis: $(redis-server --version)"
  echo "hakv: ${HAKV_DESC:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with local changes)')}"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "command: bench/compare.sh --runs $RUNS --duration $DURATION --warmup $WARMUP --keys $KEYS --value-size $VALUE --inflight \"$INFLIGHT\" --loads \"$LOADS\""
} >"$OUT/machine.txt"

/usr/bin/python3 bench/report.py "$OUT"
