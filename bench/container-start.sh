#!/usr/bin/env bash
# How long `cosmovisor run start` takes to get the node running, in the FROM-scratch image
# (`podman run -d`, as scripts/check-image.sh runs it) against the same static binary run directly
# on the host, both as user 65532 over the same home and static mock node: from the command's
# start to the node's `start` line in mock-events.log (polled every 2 ms). Prints the median of
# each over N runs and their ratio.
#
# Usage: scripts/release.sh && bench/container-start.sh [RUNS]   (default 7; root; podman, runc,
# musl-tools, setpriv from util-linux)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
((EUID == 0)) || {
  echo "container-start.sh: run as root (podman)" >&2
  exit 1
}
# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh
trap podman_cleanup EXIT
build_static_mock
image=localhost/cosmovisor:bench
build_image "$image"

home=$work/home
chmod 755 "$work"
mkdir -p "$home/data" "$work/stage"
cp "$mock" "$work/stage/panacead"
chown -R 65532:65532 "$home"
as_node_user=(setpriv --reuid 65532 --regid 65532 --clear-groups)
DAEMON_HOME=$home DAEMON_NAME=panacead "${as_node_user[@]}" "$binary" init "$work/stage/panacead" >"$work/init.log" 2>&1 \
  || { cat "$work/init.log" >&2 && exit 1; }
echo '{"version":"v1.0.0","block_time_ms":100}' >"$home/cosmovisor/genesis/mock-node.json"
events=$home/mock-events.log

now_ns() { date +%s%N; }
# Milliseconds from $1 (ns) until the node has logged its start.
until_node_start() {
  local deadline=$((SECONDS + 30))
  until grep -q '^start ' "$events" 2>/dev/null; do
    ((SECONDS < deadline)) || {
      echo "container-start.sh: the node did not start within 30 s: $(tail -n3 "$work"/*.log)" >&2
      exit 1
    }
    sleep 0.002
  done
  echo $((($(now_ns) - $1) / 1000000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

direct=()
container=()
for ((i = 0; i < runs; i++)); do
  rm -f "$events"
  t0=$(now_ns)
  DAEMON_HOME=$home DAEMON_NAME=panacead COSMOVISOR_LOG_FORMAT=json "${as_node_user[@]}" \
    "$binary" run start >"$work/direct.log" 2>&1 &
  pid=$!
  direct+=("$(until_node_start "$t0")")
  kill -TERM "$pid"
  wait "$pid" || true

  rm -f "$events"
  t0=$(now_ns)
  pm run -d --name "bench$i" --read-only --network none --ulimit host \
    -v "$home:/home/panacea/.panacea" "$image" >/dev/null
  container+=("$(until_node_start "$t0")")
  pm rm --force --time 30 "bench$i" >/dev/null
done

d=$(printf '%s\n' "${direct[@]}" | median)
c=$(printf '%s\n' "${container[@]}" | median)
echo "runs: $runs; direct (ms): ${direct[*]}; container (ms): ${container[*]}"
awk -v d="$d" -v c="$c" 'BEGIN { printf "node started after: direct %d ms, in the container %d ms (median); ratio %.1fx, +%d ms\n", d, c, c / d, c - d }'
