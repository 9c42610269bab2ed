#!/usr/bin/env bash
# Builds every fuzz target (fuzz/) and runs each for a bounded time, then
# prints the executions per target. Exits non-zero when a target crashes
# (a panic or a failed property); the input is left in fuzz/artifacts/.
#
#   scripts/fuzz.sh [seconds-per-target]        (default 60)
#
# FUZZ_PROFILE=dev builds without optimisations: a much cheaper build, and
# several times fewer executions a second (what CI uses for its short run).
# FUZZ_TARGET_DIR puts the build elsewhere than fuzz/target (CI keeps it
# outside its fresh clone, so only the first run on a machine builds the
# dependencies). New inputs the fuzzer finds go to fuzz/target/corpus-work/<target>, never
# into the committed seed corpus (fuzz/corpus/<target>), which it reads.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
profile="${FUZZ_PROFILE:-release}"
# cargo fuzz passes nightly-only flags to rustc; the stable compiler takes
# them when told it is bootstrapping, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
# No sanitizer: the server forbids unsafe code, and ASan would double the
# build and halve the executions. Panics and failed properties still crash.
flags=(--sanitizer none --codegen-units 16 --target-dir "${FUZZ_TARGET_DIR:-target}")
# The default profile: optimised, with debug assertions and overflow checks.
if [ "$profile" = dev ]; then flags+=(--dev); fi

if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz is not installed: cargo install --locked cargo-fuzz" >&2
    exit 2
fi

started=$(date +%s)
nice -n 19 cargo fuzz build "${flags[@]}"
echo "build: $(( $(date +%s) - started ))s (${profile})"

mkdir -p target/fuzz-logs
crashed=()
total=0
for target in $(cargo fuzz list); do
    work="target/corpus-work/$target"
    log="target/fuzz-logs/$target.log"
    mkdir -p "$work" "artifacts/$target"
    status=0
    nice -n 19 cargo fuzz run "${flags[@]}" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    printf '%-10s %12s executions  coverage %6s  in %ss\n' "$target" "${execs:-?}" "${cov:-?}" "$secs"
    total=$(( total + ${execs:-0} ))
    if [ "$status" -ne 0 ]; then
        crashed+=("$target")
        echo "  $target CRASHED (exit $status); last lines of $log:" >&2
        tail -n 25 "$log" >&2
    fi
done
echo "total: $total executions; $(( $(date +%s) - started ))s with the build"
if [ "${#crashed[@]}" -gt 0 ]; then
    echo "crashed: ${crashed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
