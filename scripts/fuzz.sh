#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 600), one after the other, on
# the committed seed corpus fuzz/corpus/<target>/ (read only; what the run discovers goes to
# fuzz/target/corpus/<target>/, which git ignores). Stops at the first crash (exit 1); the
# input is then in fuzz/artifacts/<target>/. The last stats line of each run is printed and
# appended to fuzz/target/stats.txt.
#
# Needs: rustup toolchain install nightly --profile minimal; cargo install cargo-fuzz --locked
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail

seconds="${1:-600}"
shift || true
cd "$(dirname "$0")/../fuzz"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(plan_file output_scanner plan_info config duration archive)
fi
# The archive target unpacks into temporary folders; tmpfs keeps that fast.
if [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
cargo +nightly fuzz build
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
echo "== built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- ../src ../Cargo.toml . || echo ' (with uncommitted changes)')"
mkdir -p target
for target in "${targets[@]}"; do
    grown="target/corpus/$target"
    mkdir -p "$grown" "artifacts/$target"
    log="target/$target.log"
    echo "== $target: $seconds s (log: fuzz/$log)"
    # The binary built above, run directly: editing the tree during a long run changes nothing.
    if ! "target/$triple/release/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -print_final_stats=1 "$grown" "corpus/$target" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "== $target: CRASH (see fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    {
        echo "== $target ($seconds s, $(date -u +%FT%TZ))"
        grep -E '^#[0-9]+.*DONE' "$log" | tail -n 1
        grep -E '^stat::' "$log"
    } | tee -a target/stats.txt
done
