#!/usr/bin/env bash
# Builds the container image (Containerfile: FROM scratch, the static binary from dist/) with podman
# and runs it here, asserting everything from the host:
# 1. the image: its configuration (user 65532, entrypoint, command, stop signal, volume, ports,
#    environment, OCI labels), its files (/usr/bin/cosmovisor, identical to dist/'s, and nothing
#    else) and its size;
# 2. `podman run --read-only --network none` runs `version --cosmovisor-only`, and `init` sets up a
#    home volume as the non-root user;
# 3. `run start` as PID 1 of the container, over a static mock node staged as genesis with two
#    upgrades (v2, v3): the node reaches its upgrade height, cosmovisor stops it, backs up,
#    switches and restarts it inside the container, every process running as 65532, no zombie;
# 4. `podman stop -t 60` while the custom pre-upgrade hook of v3 runs: cosmovisor ends it and exits
#    143 at once (never killed), nothing is left running on the host, the journal keeps the
#    upgrade; the next `podman start` completes it without a second backup, and the new binary
#    answers `podman exec ... version`;
# 5. contrib/kubernetes/statefulset.yaml: it validates against the Kubernetes schemas
#    (kubernetes-validate --strict), its pod template meets the hardening the file promises, and
#    that template, rendered as a Pod, runs with `podman kube play`: the init container copies
#    cosmovisor into the shared volume, `init-home` sets the home up, and the node upgrades inside
#    the pod, as 65532 with no capability, no privilege escalation and a seccomp filter, metrics
#    served on the pod's address.
# Everything podman stores lives in a temporary folder that is removed at the end
# (scripts/container-lib.sh).
#
# Usage: scripts/release.sh && scripts/check-image.sh
# Needs: root; podman, runc, catatonit (podman's pause image for kube play), a static busybox (the
# slow hook's shell: busybox-static), musl-tools (the static mock node), kubernetes-validate
# (pip install kubernetes-validate), curl, nsenter (util-linux). Under a minute once release.sh
# has built (it compiles only the mock node).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS

die() {
  echo "check-image.sh: $*" >&2
  exit 1
}
step() { echo "== $*"; }

((EUID == 0)) || die "podman needs root here (vfs storage, runc): run as root"
missing=()
for tool in podman runc catatonit musl-gcc kubernetes-validate curl nsenter readelf python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) \
  || die "missing ${missing[*]}: apt-get install podman runc catatonit busybox-static musl-tools curl util-linux binutils; pip install kubernetes-validate"
busybox=/bin/busybox
if [[ ! -x $busybox ]] || readelf -lW "$busybox" | grep -q 'Requesting program interpreter'; then
  die "$busybox is missing or not static: apt-get install busybox-static (the slow hook runs on it in an image with no shell)"
fi

# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh
trap podman_cleanup EXIT
[[ -x $binary ]] || die "no $binary: run scripts/release.sh first"

step "building the static mock node (release profile)"
build_static_mock || die "could not build a static mock node"

# Polls (every 20 ms) until a command succeeds; fails naming what did not happen.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || die "$what did not happen within ${seconds}s"
    sleep 0.02
  done
}
has_line() { [[ -f $2 ]] && grep -qx -- "$1" "$2"; }
has_match() { [[ -f $2 ]] && grep -q -- "$1" "$2"; }
expect_eq() {
  [[ $2 == "$3" ]] || die "$1: expected '$3', got '$2'"
}

image=localhost/cosmovisor:check
step "podman build (version $version)"
build_start=$SECONDS
build_image "$image" || die "podman build failed"
echo "built in $((SECONDS - build_start))s"

step "image configuration, files and size"
config=$(pm image inspect "$image" --format \
  '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{.Config.StopSignal}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}')
expect_eq "image user|entrypoint|cmd|stop signal|volumes|ports" "$config" \
  '65532:65532|["/usr/bin/cosmovisor"]|["run","start"]|SIGTERM|{"/home/panacea/.panacea":{}}|{"26656/tcp":{},"26657/tcp":{},"9090/tcp":{},"9102/tcp":{}}'
env=$(pm image inspect "$image" --format '{{range .Config.Env}}{{println .}}{{end}}')
for pair in DAEMON_HOME=/home/panacea/.panacea DAEMON_NAME=panacead DAEMON_SHUTDOWN_GRACE=30s \
  COSMOVISOR_LOG_FORMAT=json COSMOVISOR_COLOR_LOGS=false; do
  grep -qx -- "$pair" <<<"$env" || die "the image's environment has no $pair: $env"
done
for label in "org.opencontainers.image.version=$version" org.opencontainers.image.licenses=Apache-2.0 \
  org.opencontainers.image.source=https://example.invalid/cosmovisor org.opencontainers.image.title=cosmovisor; do
  got=$(pm image inspect "$image" --format "{{index .Labels \"${label%%=*}\"}}")
  expect_eq "label ${label%%=*}" "$got" "${label#*=}"
done
rootfs=$(pm image mount "$image")
files=$(cd "$rootfs" && find . -printf '%M %u:%g %p\n' | sort -k3)
pm image unmount "$image" >/dev/null
expect_eq "the image's files" "$files" "dr-xr-xr-x root:root .
drwxr-xr-x root:root ./usr
drwxr-xr-x root:root ./usr/bin
-rwxr-xr-x root:root ./usr/bin/cosmovisor"
rootfs=$(pm image mount "$image")
cmp -s "$rootfs/usr/bin/cosmovisor" "$binary" || die "/usr/bin/cosmovisor in the image is not $binary"
pm image unmount "$image" >/dev/null
size=$(pm image inspect "$image" --format '{{.Size}}')
binary_size=$(stat -c %s "$binary")
# The binary plus the image's metadata (a few KiB), nothing else.
((size >= binary_size && size <= binary_size + 16384)) \
  || die "image size $size bytes: expected the binary's $binary_size bytes plus at most 16 KiB"
echo "image: $size bytes (binary $binary_size); files: /usr/bin/cosmovisor only"

step "podman run --read-only --network none ... version --cosmovisor-only"
said=$(pm run --rm --read-only --network none --ulimit host "$image" version --cosmovisor-only)
expect_eq "version in the container" "$said" "cosmovisor version: v$version"

# The home volume: owned by the image's user, the node's binaries staged in it.
home=$work/home
stage=$work/stage
mkdir -p "$home/data" "$stage"
cp "$mock" "$stage/panacead"
chown -R 65532:65532 "$home"
step "cosmovisor init in the container, as 65532"
pm run --rm --read-only --network none --ulimit host -v "$home:/home/panacea/.panacea" \
  -v "$stage:/stage:ro" "$image" init /stage/panacead >"$work/init.log" 2>&1 \
  || die "init in the container failed: $(cat "$work/init.log")"
cv=$home/cosmovisor
expect_eq "current after init" "$(readlink "$cv/current")" "genesis"
expect_eq "owner of genesis/bin/panacead" "$(stat -c %u:%g "$cv/genesis/bin/panacead")" "65532:65532"

# Genesis v1 upgrades to v2 at height 10; v2 to v3 at height 20. The custom pre-upgrade hook (a
# script run by the static busybox staged in the home) blocks during v3's first attempt only.
stage_upgrades() {
  local cv=$1
  echo '{"version":"v1.0.0","block_time_ms":100,"after_upgrade":"keep-running","upgrade":{"name":"v2","height":10}}' \
    >"$cv/genesis/mock-node.json"
  mkdir -p "$cv/upgrades/v2/bin" "$cv/upgrades/v3/bin"
  cp "$mock" "$cv/upgrades/v2/bin/panacead"
  cp "$mock" "$cv/upgrades/v3/bin/panacead"
  echo '{"version":"v2.0.0","block_time_ms":100,"after_upgrade":"keep-running","upgrade":{"name":"v3","height":20}}' \
    >"$cv/upgrades/v2/mock-node.json"
  echo '{"version":"v3.0.0","block_time_ms":100}' >"$cv/upgrades/v3/mock-node.json"
}
stage_upgrades "$cv"
cp "$busybox" "$cv/busybox"
cat >"$cv/slow-hook" <<'HOOK'
#!/home/panacea/.panacea/cosmovisor/busybox sh
# For v3 the first run waits until it is stopped; the run after the restart succeeds at once.
[ "$1" = v3 ] || exit 0
if [ -e hook-started ]; then echo "$1 $2" >hook-resumed; exit 0; fi
echo "$$" >hook-started
exec /home/panacea/.panacea/cosmovisor/busybox sleep 600
HOOK
chmod 755 "$cv/slow-hook"
chown -R 65532:65532 "$home"

# The processes of a container's PID namespace, seen from the host: "pid uid state exe" lines.
processes_in() {
  local ns=$1 pid
  for pid in /proc/[0-9]*; do
    [[ $(readlink "$pid/ns/pid" 2>/dev/null) == "$ns" ]] || continue
    printf '%s %s %s %s\n' "${pid#/proc/}" "$(awk '/^Uid:/ {print $2}' "$pid/status" 2>/dev/null)" \
      "$(awk '/^State:/ {print $2}' "$pid/status" 2>/dev/null)" "$(readlink "$pid/exe" 2>/dev/null)"
  done
}

events=$home/mock-events.log
step "run start as PID 1: genesis upgrades to v2 inside the container"
pm run -d --name node --read-only --network none --ulimit host -v "$home:/home/panacea/.panacea" \
  -e DAEMON_SHUTDOWN_GRACE=10s -e DAEMON_POLL_INTERVAL=300ms -e COSMOVISOR_CUSTOM_PREUPGRADE=slow-hook \
  "$image" >/dev/null
wait_for 60 "the v3 hook starting (v1 -> v2 upgrade, then v2 reaching height 20)" test -e "$home/hook-started"
for line in "start v1.0.0 height=0" "upgrade-needed v2 10" "pre-upgrade v2.0.0 0" "upgrade-needed v3 20"; do
  has_line "$line" "$events" || die "mock-events.log has no '$line': $(cat "$events")"
done
has_match "^start v2.0.0 height=" "$events" || die "v2 never started: $(cat "$events")"
expect_eq "current after the v2 upgrade" "$(readlink "$cv/current")" "upgrades/v2"
pid1=$(pm inspect node --format '{{.State.Pid}}')
expect_eq "the container's PID 1" "$(awk '/^NSpid:/ {print $NF}' "/proc/$pid1/status")" 1
expect_eq "PID 1's executable" "$(readlink "/proc/$pid1/exe")" /usr/bin/cosmovisor
ns=$(readlink "/proc/$pid1/ns/pid")
procs=$(processes_in "$ns")
grep -q " /home/panacea/.panacea/cosmovisor/busybox$" <<<"$procs" || die "the hook is not running in the container: $procs"
grep -q "/bin/panacead$" <<<"$procs" && die "the node still runs during the upgrade: $procs"
awk '$2 != 65532 {exit 1}' <<<"$procs" || die "a process in the container is not 65532: $procs"
awk '$3 == "Z" {exit 1}' <<<"$procs" || die "a zombie in the container: $procs"
journal=$cv/upgrade-journal.json
grep -q '"phase": "backed_up"' "$journal" || die "the journal is not at backed_up while the hook runs: $(cat "$journal")"

step "podman stop -t 60 during v3's custom pre-upgrade hook"
stop_start=$(date +%s%N)
pm stop -t 60 node >/dev/null
stop_ms=$((($(date +%s%N) - stop_start) / 1000000))
expect_eq "exit code after SIGTERM during the hook" "$(pm inspect node --format '{{.State.ExitCode}}')" 143
((stop_ms < 20000)) || die "podman stop took ${stop_ms} ms: cosmovisor did not end the hook at once"
left=$(processes_in "$ns")
[[ -z $left ]] || die "processes left on the host after the stop: $left"
pgrep -f '/home/panacea/.panacea/cosmovisor/busybox' >/dev/null && die "the hook survived the container"
grep -q '"phase": "backed_up"' "$journal" || die "the journal lost the upgrade: $(cat "$journal" 2>&1)"
expect_eq "current after the stop" "$(readlink "$cv/current")" "upgrades/v2"
logs=$(pm logs node 2>&1)
grep -q '"message":"upgrade interrupted; it resumes on the next start"' <<<"$logs" \
  || die "cosmovisor did not say the upgrade resumes: $(tail -n5 <<<"$logs")"
count_backups() { find "$home" -maxdepth 1 -name 'data-backup-*' | wc -l; }
backups=$(count_backups)
echo "stopped in ${stop_ms} ms, exit 143, journal at backed_up, $backups backups"

step "podman start: the journal completes v3"
pm start node >/dev/null
wait_for 60 "v3 starting after the restart" has_match "^start v3.0.0 height=" "$events"
expect_eq "current after the resumed upgrade" "$(readlink "$cv/current")" "upgrades/v3"
[[ ! -e $journal ]] || die "the journal is still there after the upgrade: $(cat "$journal")"
expect_eq "backups after the resumed upgrade (not taken twice)" "$(count_backups)" "$backups"
expect_eq "the hook's second run" "$(cat "$home/hook-resumed" 2>&1)" "v3 20"
said=$(pm exec node /usr/bin/cosmovisor version)
grep -qx v3.0.0 <<<"$said" || die "'cosmovisor version' in the container does not print the new binary's v3.0.0: $said"
pid1=$(pm inspect node --format '{{.State.Pid}}')
procs=$(processes_in "$(readlink "/proc/$pid1/ns/pid")")
grep -q " /home/panacea/.panacea/cosmovisor/upgrades/v3/bin/panacead$" <<<"$procs" || die "v3 is not running: $procs"
awk '$2 != 65532 {exit 1}' <<<"$procs" || die "a process in the container is not 65532: $procs"
pm stop -t 60 node >/dev/null
expect_eq "exit code of a plain stop" "$(pm inspect node --format '{{.State.ExitCode}}')" 0
expect_eq "the node's last event" "$(tail -n1 "$events")" "exit 0"
pm rm node >/dev/null

step "Kubernetes example: schemas (kubernetes-validate --strict)"
manifest=contrib/kubernetes/statefulset.yaml
kubernetes-validate --strict --quiet "$manifest" || die "$manifest does not validate against the Kubernetes schemas"

step "Kubernetes example: the pod template rendered as a Pod and played with podman kube play"
chain_image=localhost/mock-chain:check
mkdir -p "$work/chain"
cp "$mock" "$work/chain/panacead"
printf 'FROM scratch\nCOPY --chmod=0755 panacead /usr/bin/panacead\nUSER 65532:65532\n' >"$work/chain/Containerfile"
pm build --quiet -t "$chain_image" "$work/chain" >/dev/null
pod_home=$work/pod-home
mkdir -p "$pod_home/data" "$pod_home/cosmovisor/genesis"
stage_upgrades "$pod_home/cosmovisor"
chown -R 65532:65532 "$pod_home"
python3 "$repo/scripts/render-pod.py" "$manifest" --image "cosmovisor=$image" --image "panacead=$chain_image" \
  --home "$pod_home" >"$work/pod.yaml"
# kube play builds an image itself when a folder of the current one is named like it: play from
# an empty folder.
mkdir -p "$work/play"
(cd "$work/play" && pm kube play --network none "$work/pod.yaml" >/dev/null)
pod_events=$pod_home/mock-events.log
wait_for 60 "v2 starting in the pod" has_match "^start v2.0.0 height=" "$pod_events"
expect_eq "current in the pod's home" "$(readlink "$pod_home/cosmovisor/current")" "upgrades/v2"
node_pid=$(pm inspect panacea-0-node --format '{{.State.Pid}}')
expect_eq "the node container's PID 1" "$(readlink "/proc/$node_pid/exe")" /opt/cosmovisor/genesis/bin/cosmovisor
expect_eq "read-only root filesystem" "$(pm inspect panacea-0-node --format '{{.HostConfig.ReadonlyRootfs}}')" true
status=$(grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$node_pid/status" | tr -s '\t' ' ')
expect_eq "cosmovisor's credentials in the pod" "$status" "Uid: 65532 65532 65532 65532
Gid: 65532 65532 65532 65532
CapEff: 0000000000000000
CapBnd: 0000000000000000
NoNewPrivs: 1
Seccomp: 2"
metrics=$(nsenter -t "$node_pid" -n curl -fsS --max-time 5 http://127.0.0.1:9102/metrics) \
  || die "no metrics on the pod's address 127.0.0.1:9102"
grep -qx 'cosmovisor_current_version_info{version="v2"} 1' <<<"$metrics" \
  || die "the metrics do not show current = v2: $(grep current_version <<<"$metrics")"
pm pod stop -t 60 panacea-0 >/dev/null
expect_eq "the node container's exit code after the pod's stop" \
  "$(pm inspect panacea-0-node --format '{{.State.ExitCode}}')" 0
expect_eq "the pod's node's last event" "$(tail -n1 "$pod_events")" "exit 0"

echo "check-image.sh: all checks passed in $((SECONDS - started))s"
