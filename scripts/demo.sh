#!/usr/bin/env bash
# Live demo: builds cosmovisor and the mock chain node, makes a throw-away Panacea-like home, and
# lets you watch a chain upgrade happen: the node reaches the upgrade height, cosmovisor stops it,
# backs up data/, runs the new binary's pre-upgrade, switches `current` and restarts the node on
# the new version, which then halts by itself at --halt-height so the demo ends on its own.
#
# The first run compiles the release binaries: about 4 minutes on 2 cores (seconds afterwards).
#
# Usage: scripts/demo.sh            (home in a new temp folder)
#        DEMO_HOME=/tmp/x scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building cosmovisor and the mock node (release): the first run compiles everything, about 4 minutes on 2 cores"
cargo build --release --locked --bins
bin=$PWD/target/release

home=${DEMO_HOME:-$(mktemp -d /tmp/cosmovisor-demo.XXXXXX)}
mkdir -p "$home/data"
export DAEMON_HOME=$home DAEMON_NAME=panacead
export DAEMON_POLL_INTERVAL=300ms DAEMON_SHUTDOWN_GRACE=10s COSMOVISOR_COLOR_LOGS=false

echo "== cosmovisor init (genesis binary: the mock node as panacead v2.0.6)"
"$bin/cosmovisor" init "$bin/mock-node"
# The genesis version cannot run past height 15 and, like panacead, keeps running after the
# upgrade panic; cosmovisor must stop it.
cat > "$home/cosmovisor/genesis/mock-node.json" <<JSON
{"version":"v2.0.6","block_time_ms":150,"ldb_every":5,"after_upgrade":"keep-running",
 "upgrade":{"name":"v2.1.0","height":15,"info":""}}
JSON
echo "== staging the upgrade binary at cosmovisor/upgrades/v2.1.0/bin/panacead"
mkdir -p "$home/cosmovisor/upgrades/v2.1.0/bin"
cp "$bin/mock-node" "$home/cosmovisor/upgrades/v2.1.0/bin/panacead"
echo '{"version":"v2.1.0","block_time_ms":150,"ldb_every":5}' > "$home/cosmovisor/upgrades/v2.1.0/mock-node.json"

echo "== cosmovisor run start --halt-height 25   (home: $home)"
status=0
"$bin/cosmovisor" run start --home "$home" --halt-height 25 || status=$?

echo
echo "== done (exit $status). What happened on disk:"
echo "current -> $(readlink "$home/cosmovisor/current")"
echo "applied plan: $(cat "$home/cosmovisor/current/upgrade-info.json")"
echo "backups: $(cd "$home" && ls -d data-backup-* 2>/dev/null | tr '\n' ' ')"
echo "node events:"
sed 's/^/  /' "$home/mock-events.log"
echo "(remove the home with: rm -rf $home)"
