#!/usr/bin/env bash
# Runs every cargo-fuzz target in this directory for FUZZ_SECONDS seconds each
# (default 20), starting from the checked-in seeds in corpus/<target>/. Exits non-zero
# if any target finds a crash (a panic, a sanitizer report, a timeout or an
# out-of-memory); the crashing input is kept in fuzz/artifacts/<target>/ and printed.
#
#   fuzz/run.sh                     # what CI runs
#   FUZZ_SECONDS=300 fuzz/run.sh    # longer
#   fuzz/run.sh kv_entry raft_wire  # only these targets
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"

# The machine has only the stable toolchain, and cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address and friends) to rustc: RUSTC_BOOTSTRAP=1 makes stable rustc
# accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "-- installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# libFuzzer adds the inputs it finds to the first corpus directory: work on a copy of
# the seeds so that the checked-in corpus stays as it is.
work="$(mktemp -d)"
# wal_records writes a data directory per input under TMPDIR: in memory where there is
# a tmpfs (three times the inputs per second of a disk).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  scratch="$(mktemp -d -p /dev/shm hakv-fuzz.XXXXXX)"
else
  scratch="$work/tmp"
  mkdir -p "$scratch"
fi
trap 'rm -rf "$work" "$scratch"' EXIT
export TMPDIR="$scratch"

echo "-- building the fuzz targets"
cargo fuzz build

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" artifacts
  if [ -d "corpus/$t" ]; then
    cp corpus/"$t"/* "$work/corpus/$t/" 2>/dev/null || true
  fi
  log="$work/$t.log"
  # -timeout: an input taking this long is a hang (inputs take milliseconds; the margin
  # is for a busy shared machine, where a 10 s stall has been seen); -rss_limit_mb and
  # -malloc_limit_mb: a decoder that believes a length prefix and allocates is a crash.
  if cargo fuzz run "$t" "$work/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      >"$log" 2>&1; then
    stats="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)"
    echo "$t: ok: ${stats:-done} ($(ls "$work/corpus/$t" | wc -l) corpus inputs)"
  else
    echo "$t: FAILED"
    # The report: the panic or sanitizer message, then the input that caused it.
    report="$(grep -E -A10 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer|^SUMMARY: ' "$log" | head -n 60 || true)"
    if [ -n "$report" ]; then echo "$report"; else tail -n 40 "$log"; fi
    for a in $(grep -oE "artifacts/$t/[a-z]+-[0-9a-f]+" "$log" | sort -u); do
      echo "-- input $a ($(stat -c %s "$a") bytes):"
      od -An -tx1 -v "$a" | head -n 40
      echo "-- reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t $a)"
    done
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds} s each, no crash"
