#!/usr/bin/env bash
# hakv with 1, 4, 16 and 64 shards on the same 3 nodes, and what idle shards cost.
#
# Throughput: for every shard count S (--shards) and every run, a fresh `hakv up
# --nodes 3 --shards S` (3 replicas per shard, so every node holds every shard and
# leads about a third of them; all groups of a node share one host thread, one log
# and one fsync per round), the key space is preloaded once, then `hakv bench`
# drives it closed loop (50 connections x 1 in flight, 256-byte values, uniform keys):
#   writes (SET) then linearizable reads (GET), each sent to
#     one   node 1 only: it forwards every request for a shard it does not lead one
#           hop to that shard's leader (about 2/3 of them once S > 1),
#     all   the three nodes, connections spread round-robin.
# Over each measured window it takes the user + system CPU time of the 3 hakv server
# processes (/proc/PID/stat; pids from DIR/cluster.json), their peer frames
# (hakv_transport_frames_sent_total from /metrics), their fsync/fdatasync calls and
# context switches (perf stat, if perf is installed and allowed), the whole machine's
# busy time (/proc/stat, to see other jobs), and the load average.
#
# Idle: for every count in --idle-shards, a fresh cluster is started, left alone until
# leadership has settled (the nodes hand each shard to the ring's first choice), then
# for --idle (30 s) nothing is sent to it: CPU cores used by the 3 servers, their RSS,
# peer frames/s, bytes written to disk.
#
# Runs are interleaved (run 1 of every S, then run 2, ...) so that drifts in the
# machine's load hit every S alike; the table shows the median of each figure.
#
#   bench/shards.sh                          # 3 runs x 10 s (+2 s warm-up) per cell, 30 s idle: ~15 minutes
#   bench/shards.sh --runs 5 --idle-runs 3   # what BENCHMARKS.md reports: ~30 minutes
#   bench/shards.sh --quick                  # 1 run x 3 s (+1 s warm-up), 10 s idle
#   bench/shards.sh --shards "1 64" --idle-shards "1000" --runs 1
#
# Options: --quick, --runs N, --duration D, --warmup D, --idle D, --shards "1 4 16 64",
# --idle-shards "1 100 1000" (empty: skip), --idle-runs N (each idle count N times,
# interleaved; median), --targets "one all", --loads "write read",
# --keys N, --value-size B, --connections N, --port P (first client port tried;
# a free block is searched from there), --ready-timeout SECONDS, --out DIR (default
# bench/results/shards: raw/*.json, results.json, table.md, machine.txt), --keep
# (leave the data directories and logs under target/shards.*), --up-args "..." (more
# flags for `hakv up`, e.g. "--tick-ms 100"), --settle SECONDS (start measuring no sooner
# than this long after starting the cluster, and only once leadership has stopped
# moving), --report-only (only print the table again from DIR/raw).
# Env: HAKV_BIN (a prebuilt hakv binary; otherwise
# `flock /tmp/hakv-cargo.lock cargo build --release` and target/release/hakv),
# HAKV_DESC (how to name that binary's version in machine.txt; default when built here:
# the git commit).
#
# Every process it starts is stopped at the end, also on Ctrl-C or an error.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DURATION=10s
WARMUP=2s
IDLE=30s
SHARDS="1 4 16 64"
IDLE_SHARDS="1 100 1000"
IDLE_RUNS=1
TARGETS="one all"
LOADS="write read"
KEYS=100000
VALUE=256
CONNS=50
PORT=27001
READY_TIMEOUT=600
OUT=bench/results/shards
KEEP=0
UP_ARGS=""
SETTLE=0
REPORT_ONLY=0
ARGS=$(printf ' %q' "$@")
while [ $# -gt 0 ]; do
  case $1 in
    --quick) RUNS=1; DURATION=3s; WARMUP=1s; IDLE=10s ;;
    --runs) RUNS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    --shards) SHARDS=$2; shift ;;
    --idle-shards) IDLE_SHARDS=$2; shift ;;
    --idle-runs) IDLE_RUNS=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    --loads) LOADS=$2; shift ;;
    --keys) KEYS=$2; shift ;;
    --value-size) VALUE=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    --port) PORT=$2; shift ;;
    --ready-timeout) READY_TIMEOUT=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --up-args) UP_ARGS=$2; shift ;;
    --settle) SETTLE=$2; shift ;;
    --report-only) REPORT_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$REPORT_ONLY" = 1 ]; then SHARDS=""; IDLE_SHARDS=""; fi

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "this script needs $tool" >&2; exit 1; }
done

if [ "$REPORT_ONLY" = 1 ]; then
  :
elif [ -z "${HAKV_BIN:-}" ]; then
  echo "== flock /tmp/hakv-cargo.lock cargo build --release"
  flock /tmp/hakv-cargo.lock cargo build --release -q
  HAKV_BIN=target/release/hakv
  : "${HAKV_DESC:=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates/*/src 2>/dev/null || echo ' (with local changes under crates/*/src)')}"
fi

# Data on the repository's disk (not a tmpfs: fsync must mean something).
mkdir -p target
WORK=$(mktemp -d "$PWD/target/shards.XXXXXX")
# A private copy of the binary: a rebuild during the run must not change what runs
# (`hakv up` starts its nodes from its own executable).
if [ "$REPORT_ONLY" = 0 ]; then
  cp "$HAKV_BIN" "$WORK/hakv"
  HAKV_BIN="$WORK/hakv"
fi
UP_PID=""
NODE_PIDS=()
BENCH_PID=""
stop_cluster() {
  local p
  if [ -n "$UP_PID" ]; then
    # `hakv up` stops its nodes cleanly on SIGTERM (SIGKILL after 5 s).
    kill -TERM "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$UP_PID" 2>/dev/null || true
    wait "$UP_PID" 2>/dev/null || true
  fi
  # Nodes orphaned by a killed `up`: the pids it wrote into cluster.json.
  for p in "${NODE_PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in "${NODE_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  UP_PID=""; NODE_PIDS=()
}
cleanup() {
  if [ -n "${PERF_PID:-}" ]; then kill -TERM "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; fi
  if [ -n "$BENCH_PID" ]; then kill -TERM "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
  stop_cluster
  if [ "$KEEP" = 1 ]; then echo "data and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
  echo "warning: $WORK is on a tmpfs, fsync costs nothing there" >&2
fi

TICKS=$(getconf CLK_TCK)
# CPU seconds (user + system, every thread) used so far by the given processes.
cpu_of() {
  local total=0 p f
  for p in "$@"; do
    # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
    f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || f=0
    total=$((total + ${f:-0}))
  done
  awk -v t="$total" -v hz="$TICKS" 'BEGIN {printf "%.3f", t / hz}'
}
# Busy CPU seconds of the whole machine so far (every state but idle and iowait).
machine_busy() { awk -v hz="$TICKS" '/^cpu / {printf "%.3f", ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat; }
# Bytes the given processes caused to be written to disk so far (/proc/PID/io).
disk_written() {
  local total=0 p b
  for p in "$@"; do
    b=$(awk '/^write_bytes:/ {print $2}' "/proc/$p/io" 2>/dev/null) || b=0
    total=$((total + ${b:-0}))
  done
  echo "$total"
}
# Where perf can count tracepoints, fsync calls and context switches of the servers
# over each window are counted too (group commit: fsyncs per operation should not
# grow with the number of shards).
PERF=0
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,context-switches -x, -- true >/dev/null 2>&1; then
  PERF=1
fi
# perf_start FILE SECONDS PID...: counts in the background until SECONDS have passed.
perf_start() {
  local file=$1 secs=$2; shift 2
  PERF_PID=""
  [ "$PERF" = 1 ] || return 0
  local IFS=,
  perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,context-switches -x, -o "$file" -p "$*" -- sleep "$secs" >/dev/null 2>&1 &
  PERF_PID=$!
}
perf_wait() { if [ -n "${PERF_PID:-}" ]; then wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi; }
# "fsyncs context_switches" from perf_start's FILE ("- -" without perf).
perf_counts() {
  if [ "$PERF" = 1 ] && [ -s "$1" ]; then
    awk -F, '$3 ~ /fdatasync|sys_enter_fsync/ {f += $1} $3 == "context-switches" {c += $1} END {print f + 0, c + 0}' "$1"
  else
    echo "- -"
  fi
}
# "tid name cpu_ticks" for every thread of the given processes.
threads_of() {
  local p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*; do
      echo "${t##*/} $(tr ' ' _ <"$t/comm" 2>/dev/null) $(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
    done
  done
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
secs() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) {sub(/ms$/, "", d); print d / 1000} else if (d ~ /m$/) {sub(/m$/, "", d); print d * 60} else {sub(/s$/, "", d); print d + 0} }'; }
WARMUP_S=$(secs "$WARMUP")
IDLE_S=$(secs "$IDLE")

# Peer frames sent so far by every node (sum of hakv_transport_frames_sent_total).
frames_sent() {
  local total=0 i v
  for i in 0 1 2; do
    v=$(curl -s -m 5 "http://127.0.0.1:$((BASE + i + 20000))/metrics" | awk '/^hakv_transport_frames_sent_total/ {print $2}')
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# "led1 led2 led3 leaderless": data shards led by each node and data shards some node
# sees without a leader, from every node's /status (the meta group, which holds the
# shard map, is not counted).
leadership() {
  local i
  for i in 0 1 2; do
    curl -s -m 10 "http://127.0.0.1:$((BASE + i + 20000))/status" || true
    echo
  done | python3 -c '
import json, sys
led, none = [], 0
for line in sys.stdin:
    try:
        st = json.loads(line)
    except ValueError:
        led.append(0); none += 1; continue
    shards = [s for s in st.get("shards", [st]) if s.get("shard") != "meta"]
    led.append(sum(1 for s in shards if s.get("role") == "leader"))
    none += sum(1 for s in shards if s.get("leader") in (None, 0))
print(*led, none)'
}

# A block of free ports: BASE..BASE+2 (clients), +10000 (peers), +20000 (HTTP).
free_base() {
  python3 - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
while base + 2 + 20000 <= 65535:
    ok = True
    for p in [base + i + off for i in range(3) for off in (0, 10000, 20000)]:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
        if not ok:
            break
    if ok:
        print(base)
        sys.exit(0)
    base += 10
sys.exit("no free block of ports")
PY
}

# start_cluster S NAME: a fresh `hakv up` in $WORK/NAME; sets DIR, BASE, UP_PID,
# NODE_PIDS, UP_SECONDS (as `up` reports it) and waits for leadership to settle.
start_cluster() {
  local shards=$1 name=$2 t0 last="" same=0 l
  DIR="$WORK/$name"
  mkdir -p "$DIR"
  BASE=$(free_base "$PORT")
  t0=$(now)
  : >"$DIR/up.out"
  # shellcheck disable=SC2086
  "$HAKV_BIN" up --nodes 3 --shards "$shards" --dir "$DIR" --port "$BASE" $UP_ARGS >"$DIR/up.out" 2>&1 &
  UP_PID=$!
  while ! grep -q '^ready' "$DIR/up.out"; do
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      echo "hakv up --shards $shards failed:" >&2; cat "$DIR/up.out" >&2
      tail -n 20 "$DIR"/node-*.log >&2 || true
      KEEP=1; exit 1
    fi
    if awk -v a="$t0" -v b="$(now)" -v m="$READY_TIMEOUT" 'BEGIN {exit !(b - a > m)}'; then
      echo "hakv up --shards $shards not ready after $READY_TIMEOUT s:" >&2; cat "$DIR/up.out" >&2
      KEEP=1; exit 1
    fi
    sleep 0.1
  done
  READY_WALL=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
  UP_SECONDS=$(sed -n 's/.* up in \([0-9.]*\) s.*/\1/p' "$DIR/up.out")
  mapfile -t NODE_PIDS < <(python3 -c 'import json, sys; [print(n["pid"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$DIR/cluster.json")
  [ ${#NODE_PIDS[@]} -eq 3 ] || { echo "expected 3 node pids in $DIR/cluster.json" >&2; exit 1; }
  # The nodes hand leadership to each shard's preferred leader (the ring's first
  # choice) in the first seconds: wait until who leads what stops changing.
  for _ in $(seq 1 120); do
    l=$(leadership)
    if [ "$l" = "$last" ] && [ "${l##* }" = 0 ]; then
      same=$((same + 1)); [ "$same" -ge 3 ] && break
    else
      same=0
    fi
    last=$l
    sleep 0.5
  done
  # shellcheck disable=SC2086
  sleep "$(awk -v s="$SETTLE" -v a="$t0" -v b="$(now)" 'BEGIN {d = s - (b - a); print (d > 0 ? d : 0)}')"
  LEADERS=$(leadership)
}

mkdir -p "$OUT/raw"
[ "$REPORT_ONLY" = 1 ] || rm -f "$OUT"/raw/*.json

# The speed of this (virtual) machine drifts: time a fixed CPU-bound loop at the start
# and at the end, for the record.
cpu_probe() { python3 -c 'import time; t = time.perf_counter(); sum(i * i for i in range(3_000_000)); print("%.0f ms" % ((time.perf_counter() - t) * 1000))'; }
PROBE_START=$(cpu_probe)

# --- throughput -----------------------------------------------------------------
n_targets=$(wc -w <<<"$TARGETS"); n_loads=$(wc -w <<<"$LOADS")
n_cells=$(( $(wc -w <<<"$SHARDS") * n_targets * n_loads * RUNS ))
[ -n "$SHARDS" ] && echo "== throughput: $n_cells runs of $DURATION (+$WARMUP warm-up), data in $WORK"
k=0
for run in $(seq 1 "$RUNS"); do
  for s in $SHARDS; do
    [ -n "$SHARDS" ] || break
    start_cluster "$s" "s$s-run$run"
    echo "   shards $s run $run: up in ${UP_SECONDS} s on ports $BASE-$((BASE + 2)), leaders per node ${LEADERS% *} (pids ${NODE_PIDS[*]})"
    ONE="resp://127.0.0.1:$BASE"
    ALL="resp://127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"
    "$HAKV_BIN" bench "$ALL" --preload --duration 0 -q -k "$KEYS" -d "$VALUE" -c "$CONNS" >"$DIR/preload.txt" 2>&1 \
      || { echo "preload failed" >&2; cat "$DIR/preload.txt" >&2; exit 1; }
    for target in $TARGETS; do
      for load in $LOADS; do
        k=$((k + 1))
        case $target in one) url=$ONE ;; all) url=$ALL ;; *) echo "unknown target $target" >&2; exit 2 ;; esac
        case $load in write) ratio=0 ;; read) ratio=1 ;; *) echo "unknown load $load" >&2; exit 2 ;; esac
        json="$OUT/raw/s$s-$target-$load-$run.json"
        lead=$(leadership)
        "$HAKV_BIN" bench "$url" -c "$CONNS" -P 1 -r "$ratio" -k "$KEYS" -d "$VALUE" \
          --duration "$DURATION" --warmup "$WARMUP" --seed "$run" -q --json "$json" >"$DIR/last.txt" 2>&1 &
        BENCH_PID=$!
        sleep "$WARMUP_S"
        f0=$(frames_sent); la0=$(loadavg)
        c0=$(cpu_of "${NODE_PIDS[@]}"); m0=$(machine_busy); d0=$(disk_written "${NODE_PIDS[@]}"); t0=$(now)
        threads_of "${NODE_PIDS[@]}" >"$DIR/threads0"
        perf_start "$DIR/perf.csv" "$(secs "$DURATION")" "${NODE_PIDS[@]}"
        wait "$BENCH_PID" || { echo "bench failed:" >&2; cat "$DIR/last.txt" >&2; BENCH_PID=""; exit 1; }
        BENCH_PID=""
        c1=$(cpu_of "${NODE_PIDS[@]}"); m1=$(machine_busy); d1=$(disk_written "${NODE_PIDS[@]}"); t1=$(now)
        threads_of "${NODE_PIDS[@]}" >"$DIR/threads1"
        perf_wait
        f1=$(frames_sent); la1=$(loadavg)
        python3 - "$json" "$s" "$target" "$load" "$run" "$url" "$c0" "$c1" "$m0" "$m1" "$t0" "$t1" "$f0" "$f1" "$d0" "$d1" "$la0" "$la1" "$lead" $(perf_counts "$DIR/perf.csv") "$(secs "$DURATION")" "$DIR/threads0" "$DIR/threads1" "$TICKS" <<'PY'
import json, sys
(path, shards, target, load, run, url, c0, c1, m0, m1, t0, t1, f0, f1, d0, d1, la0, la1, lead, fsyncs, ctxsw, perf_s, th0, th1, hz) = sys.argv[1:]
def threads(f):
    out = {}
    for line in open(f):
        parts = line.split()
        if len(parts) == 3:
            out[parts[0]] = (parts[1], int(parts[2]))
    return out
a, b = threads(th0), threads(th1)
by_kind = {}
for tid, (name, ticks) in b.items():
    kind = "host" if name.startswith(("host", "replica")) else "runtime" if name.startswith("tokio") else "other"
    by_kind[kind] = by_kind.get(kind, 0) + (ticks - a.get(tid, (name, 0))[1]) / int(hz)
r = json.load(open(path))
led = [int(x) for x in lead.split()[:3]]
r["shards_bench"] = {
    "shards": int(shards), "target": target, "load": load, "run": int(run), "url": url,
    "window_s": float(t1) - float(t0),
    "server_cpu_s": float(c1) - float(c0),
    "machine_busy_s": float(m1) - float(m0),
    "peer_frames": int(f1) - int(f0),
    "disk_write_bytes": int(d1) - int(d0),
    "loadavg_before": la0, "loadavg_after": la1,
    "shards_led_per_node": led,
    # Counted by perf over the measured window (perf_window_s), when available.
    "fsyncs": None if fsyncs == "-" else int(fsyncs),
    "context_switches": None if ctxsw == "-" else int(ctxsw),
    "perf_window_s": float(perf_s),
    # CPU seconds over the window by kind of thread: "host" (the thread that runs every
    # group: consensus, log, fsync), "runtime" (tokio workers: clients, forwarding,
    # peer transport, cluster manager, detector).
    "server_cpu_s_by_thread": by_kind,
}
json.dump(r, open(path, "w"), indent=1)
PY
        printf '   [%3d/%d] shards %-3s %-3s %-5s run %d  %s\n' "$k" "$n_cells" "$s" "$target" "$load" "$run" \
          "$(sed -n 's/^throughput \([0-9]*\) ops\/s  *ops [0-9]*  *errors \([0-9]*\) .*/\1 ops\/s, \2 errors/p' "$DIR/last.txt")"
      done
    done
    stop_cluster
    [ "$KEEP" = 1 ] || rm -rf "$DIR"
  done
done

# --- idle -----------------------------------------------------------------------
for irun in $(seq 1 "$IDLE_RUNS"); do
for s in $IDLE_SHARDS; do
  echo "== idle: $s shards (run $irun)"
  start_cluster "$s" "idle-s$s-run$irun"
  echo "   up in ${UP_SECONDS} s (ready after ${READY_WALL} s), leaders per node ${LEADERS% *}; idle for $IDLE"
  sleep 2
  json="$OUT/raw/idle-s$s-$irun.json"
  f0=$(frames_sent); la0=$(loadavg)
  c0=$(cpu_of "${NODE_PIDS[@]}"); m0=$(machine_busy); d0=$(disk_written "${NODE_PIDS[@]}"); t0=$(now)
  per0=(); for p in "${NODE_PIDS[@]}"; do per0+=("$(cpu_of "$p")"); done
  threads_of "${NODE_PIDS[@]}" >"$DIR/threads0"
  perf_start "$DIR/perf.csv" "$IDLE_S" "${NODE_PIDS[@]}"
  sleep "$IDLE_S"
  perf_wait
  threads_of "${NODE_PIDS[@]}" >"$DIR/threads1"
  per1=(); for p in "${NODE_PIDS[@]}"; do per1+=("$(cpu_of "$p")"); done
  c1=$(cpu_of "${NODE_PIDS[@]}"); m1=$(machine_busy); d1=$(disk_written "${NODE_PIDS[@]}"); t1=$(now)
  f1=$(frames_sent); la1=$(loadavg)
  rss=(); thr=(); for p in "${NODE_PIDS[@]}"; do rss+=("$(rss_kib "$p")"); thr+=("$(ls "/proc/$p/task" | wc -l)"); done
  lead=$(leadership)
  warns=$(cat "$DIR"/node-*.log | sed 's/\x1b\[[0-9;]*m//g' | grep -c -E ' (WARN|ERROR) ' || true)
  python3 - "$json" "$s" "$c0" "$c1" "$m0" "$m1" "$t0" "$t1" "$f0" "$f1" "$d0" "$d1" "$la0" "$la1" "$lead" \
    "$UP_SECONDS" "$READY_WALL" "${per0[*]}" "${per1[*]}" "${rss[*]}" "${thr[*]}" "$warns" $(perf_counts "$DIR/perf.csv") "$irun" "$DIR/threads0" "$DIR/threads1" "$TICKS" <<'PY'
import json, sys
(path, shards, c0, c1, m0, m1, t0, t1, f0, f1, d0, d1, la0, la1, lead, up_s, ready_s, per0, per1, rss, thr, warns, fsyncs, ctxsw, _run, th0, th1, hz) = sys.argv[1:]
w = float(t1) - float(t0)
# CPU by kind of thread: the host thread (every group's consensus, storage, ticks),
# the tokio runtime's workers (clients, peer transport, cluster manager, failure
# detector, HTTP), anything else.
def threads(f):
    out = {}
    for line in open(f):
        parts = line.split()
        if len(parts) == 3:
            out[parts[0]] = (parts[1], int(parts[2]))
    return out
a, b = threads(th0), threads(th1)
by_kind = {}
for tid, (name, ticks) in b.items():
    kind = "host" if name.startswith(("host", "replica")) else "runtime" if name.startswith("tokio") else "other"
    by_kind[kind] = by_kind.get(kind, 0) + (ticks - a.get(tid, (name, 0))[1]) / int(hz) / w
json.dump({
    "shards": int(shards), "run": int(_run), "window_s": w,
    "server_cpu_s": float(c1) - float(c0),
    "server_cpu_cores": (float(c1) - float(c0)) / w,
    "per_node_cpu_cores": [(float(b) - float(a)) / w for a, b in zip(per0.split(), per1.split())],
    "machine_busy_cores": (float(m1) - float(m0)) / w,
    "peer_frames_per_s": (int(f1) - int(f0)) / w,
    "disk_write_bytes_per_s": (int(d1) - int(d0)) / w,
    "rss_kib_per_node": [int(x) for x in rss.split()],
    "threads_per_node": [int(x) for x in thr.split()],
    "shards_led_per_node": [int(x) for x in lead.split()[:3]],
    "shards_without_leader": int(lead.split()[3]),
    "up_reported_s": float(up_s) if up_s else None, "ready_wall_s": float(ready_s),
    "log_warnings": int(warns),
    "cpu_cores_by_thread": by_kind,
    "fsyncs_per_s": None if fsyncs == "-" else int(fsyncs) / w,
    "context_switches_per_s": None if ctxsw == "-" else int(ctxsw) / w,
    "loadavg_before": la0, "loadavg_after": la1,
}, open(path, "w"), indent=1)
PY
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   %.3f cores (per node %s), %.0f peer frames/s, RSS %s MiB, %.0f B/s to disk, machine busy %.2f cores, load %s" % (r["server_cpu_cores"], " ".join("%.3f" % c for c in r["per_node_cpu_cores"]), r["peer_frames_per_s"], " ".join("%.1f" % (k / 1024) for k in r["rss_kib_per_node"]), r["disk_write_bytes_per_s"], r["machine_busy_cores"], r["loadavg_after"]))' "$json"
  stop_cluster
  [ "$KEEP" = 1 ] || rm -rf "$DIR"
done
done

# --- the machine, for the record --------------------------------------------------
[ "$REPORT_ONLY" = 1 ] || {
  echo "cpu: $(lscpu | sed -n 's/^Model name:\s*//p' | head -1) x $(nproc) ($(lscpu | sed -n 's/^Hypervisor vendor:\s*//p') VM)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "os: $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "disk: $(df -h "$WORK" | awk 'NR==2 {print $1, $2}') ($(stat -f -c %T "$WORK"))"
  echo "hakv: ${HAKV_DESC:-?}"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "load average at the end: $(loadavg)"
  echo "cpu probe (a fixed python loop; lower is faster): $PROBE_START at the start, $(cpu_probe) at the end"
  echo "command: bench/shards.sh$ARGS"
  echo "settings: runs $RUNS, duration $DURATION, warm-up $WARMUP, idle $IDLE x $IDLE_RUNS, settle ${SETTLE} s, shards \"$SHARDS\", idle shards \"$IDLE_SHARDS\", targets \"$TARGETS\", loads \"$LOADS\", keys $KEYS, value $VALUE B, $CONNS connections x 1, hakv up flags: ${UP_ARGS:-none}"
} >"$OUT/machine.txt"

# --- the table --------------------------------------------------------------------
python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
med = statistics.median
cells, idle = {}, []
for path in sorted(glob.glob(os.path.join(out, "raw", "*.json"))):
    r = json.load(open(path))
    if "shards_bench" in r:
        b = r["shards_bench"]
        cells.setdefault((b["shards"], b["target"], b["load"]), []).append(r)
    elif "server_cpu_cores" in r:
        idle.append(r)

def op_stats(r):
    # Every run is writes only or reads only: the "all" line has the latencies.
    return (r.get("latency") or {}).get("all") or {}

def get(r, *keys):
    for k in keys:
        if k in r:
            return r[k]
    return None

def opt(v, digits):
    return "–" if v is None else f"{v:.{digits}f}"

# Throughput of each cell relative to the smallest shard count in the same run (the
# runs are interleaved, so this cancels the machine's drift between runs).
first_s = min((k[0] for k in cells), default=None)
by_run = {}
for (s, target, load), runs in cells.items():
    for r in runs:
        by_run[(s, target, load, r["shards_bench"]["run"])] = r["ops_per_sec"]

rows, summary = [], []
for (s, target, load), runs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    tput = [r["ops_per_sec"] for r in runs]
    lat = [op_stats(r) for r in runs]
    p50 = [l.get("p50_ms", 0) for l in lat]
    p99 = [l.get("p99_ms", 0) for l in lat]
    p999 = [l.get("p999_ms", 0) for l in lat]
    errs = sum(get(r, "errors") or 0 for r in runs)
    b = [r["shards_bench"] for r in runs]
    cores = [x["server_cpu_s"] / x["window_s"] for x in b]
    us_op = [x["server_cpu_s"] / (t * x["window_s"]) * 1e6 if t else 0 for x, t in zip(b, tput)]
    host_op = [x["server_cpu_s_by_thread"].get("host", 0) / (t * x["window_s"]) * 1e6 for x, t in zip(b, tput) if t and "server_cpu_s_by_thread" in x]
    rt_op = [x["server_cpu_s_by_thread"].get("runtime", 0) / (t * x["window_s"]) * 1e6 for x, t in zip(b, tput) if t and "server_cpu_s_by_thread" in x]
    frames_op = [x["peer_frames"] / (t * x["window_s"]) if t else 0 for x, t in zip(b, tput)]
    fsync_op = [x["fsyncs"] / (t * x["perf_window_s"]) for x, t in zip(b, tput) if t and x.get("fsyncs") is not None]
    ctxsw_op = [x["context_switches"] / (t * x["perf_window_s"]) for x, t in zip(b, tput) if t and x.get("context_switches") is not None]
    busy = [x["machine_busy_s"] / x["window_s"] for x in b]
    client = [get(r, "client_cpu_cores") or 0 for r in runs]
    other = [max(0.0, m - c - g) for m, c, g in zip(busy, cores, client)]
    led = b[0]["shards_led_per_node"]
    ratios = [by_run[(s, target, load, x["run"])] / by_run[(first_s, target, load, x["run"])]
              for x in b if by_run.get((first_s, target, load, x["run"]))]
    row = {
        "shards": s, "target": target, "load": load, "runs": len(runs),
        "ops_s": med(tput), "ops_s_runs": tput, "vs_first": med(ratios) if ratios else None,
        "vs_first_runs": ratios, "p50_ms": med(p50), "p99_ms": med(p99), "p999_ms": med(p999),
        "errors": errs, "server_cpu_cores": med(cores), "server_cpu_us_per_op": med(us_op),
        "host_thread_us_per_op": med(host_op) if host_op else None,
        "runtime_threads_us_per_op": med(rt_op) if rt_op else None,
        "peer_frames_per_op": med(frames_op), "client_cpu_cores": med(client),
        "fsyncs_per_op": med(fsync_op) if fsync_op else None,
        "context_switches_per_op": med(ctxsw_op) if ctxsw_op else None,
        "other_cpu_cores": med(other), "machine_busy_cores": med(busy),
        "node1_leads_share": (sum(x["shards_led_per_node"][0] for x in b) / len(b)) / s,
        "loadavg": [x["loadavg_after"] for x in b],
        "node1_leads": [x["shards_led_per_node"][0] for x in b],
    }
    summary.append(row)

lines = []
if summary:
    lines += [
        "| sent to | load | shards | ops/s | vs 1 shard (same run) | p50 ms | p99 ms | server CPU cores | server CPU µs/op (host thread / runtime) | peer frames/op | fsyncs/op | context switches/op | generator cores | other jobs' cores | node 1 leads | load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        err = f" ({r['errors']:,} errors)" if r["errors"] else ""
        la = "/".join(l.split()[0] for l in r["loadavg"])
        sent = "node 1 only" if r["target"] == "one" else "all 3 nodes"
        lines.append(
            f"| {sent} | {r['load']} | {r['shards']} | {r['ops_s']:,.0f}{err} | {opt(r['vs_first'], 2)}× ({', '.join('%.2f' % x for x in r['vs_first_runs'])}) | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['server_cpu_cores']:.2f} | {r['server_cpu_us_per_op']:.0f} ({opt(r['host_thread_us_per_op'], 0)} / {opt(r['runtime_threads_us_per_op'], 0)}) | {r['peer_frames_per_op']:.2f} | {opt(r['fsyncs_per_op'], 3)} | {opt(r['context_switches_per_op'], 2)} | {r['client_cpu_cores']:.2f} | "
            f"{r['other_cpu_cores']:.2f} | {'/'.join(map(str, r['node1_leads']))} of {r['shards']} | {la} |"
        )
    lines.append("")

# Several idle runs of one shard count: the median of every figure.
by = {}
for r in idle:
    by.setdefault(r["shards"], []).append(r)
def med_rec(rs):
    m = {"shards": rs[0]["shards"], "runs": len(rs), "raw": rs}
    for k in ("server_cpu_cores", "machine_busy_cores", "peer_frames_per_s", "disk_write_bytes_per_s", "ready_wall_s",
              "fsyncs_per_s", "context_switches_per_s", "window_s", "log_warnings", "shards_without_leader"):
        vals = [r[k] for r in rs if r.get(k) is not None]
        m[k] = med(vals) if vals else None
    for k in ("per_node_cpu_cores", "rss_kib_per_node"):
        m[k] = [med(v) for v in zip(*(r[k] for r in rs))]
    m["loadavg_after"] = "/".join(r["loadavg_after"].split()[0] for r in rs)
    kinds = sorted({k for r in rs for k in r.get("cpu_cores_by_thread", {})})
    m["cpu_cores_by_thread"] = {k: med([r.get("cpu_cores_by_thread", {}).get(k, 0.0) for r in rs]) for k in kinds}
    m["server_cpu_cores_runs"] = [r["server_cpu_cores"] for r in rs]
    return m
idle = [med_rec(by[k]) for k in sorted(by)]
if idle:
    lines += [
        "| shards (idle) | ready after | server CPU cores (3 nodes) | per node | host threads / runtime threads | each extra shard (3 replicas) | RSS per node | peer frames/s (3 nodes) | context switches/s | disk writes | fsyncs/s | other jobs' cores | load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    one = next((r for r in idle if r["shards"] == 1), None)
    for r in idle:
        # CPU per second of each shard beyond the first (all three replicas), against
        # the 1-shard cluster's fixed cost.
        if one is not None and r["shards"] > 1:
            extra = "%.0f µs/s" % ((r["server_cpu_cores"] - one["server_cpu_cores"]) / (r["shards"] - 1) * 1e6)
            r["extra_shard_cpu_us_per_s"] = (r["server_cpu_cores"] - one["server_cpu_cores"]) / (r["shards"] - 1) * 1e6
        else:
            extra = "–"
        other = max(0.0, r["machine_busy_cores"] - r["server_cpu_cores"])
        lines.append(
            f"| {r['shards']:,} | {r['ready_wall_s']:.1f} s | {r['server_cpu_cores']:.3f}"
            + (f" ({', '.join('%.3f' % c for c in r['server_cpu_cores_runs'])})" if r["runs"] > 1 else "") + " | "
            f"{' / '.join('%.3f' % c for c in r['per_node_cpu_cores'])} | "
            f"{r['cpu_cores_by_thread'].get('host', 0):.3f} / {r['cpu_cores_by_thread'].get('runtime', 0):.3f} | {extra} | "
            f"{' / '.join('%.1f' % (k / 1024) for k in r['rss_kib_per_node'])} MiB | {r['peer_frames_per_s']:,.0f} | "
            f"{opt(r.get('context_switches_per_s'), 0)} | {r['disk_write_bytes_per_s']:,.0f} B/s | {opt(r.get('fsyncs_per_s'), 1)} | {other:.2f} | {r['loadavg_after']} |"
        )
    lines.append("")

table = "\n".join(lines)
open(os.path.join(out, "table.md"), "w").write(table)
json.dump({"throughput": summary, "idle": idle}, open(os.path.join(out, "results.json"), "w"), indent=1)
print(table)
PY
