#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks (examples/bench.rs), printing one markdown
# table with the machine. Options are passed on: --quick, --runs N, --backup-gib N,
# --skip-backup, --tmp DIR. Progress goes to stderr, the table to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins --example bench >&2
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/examples/bench" --cosmovisor "$target/release/cosmovisor" "$@"
