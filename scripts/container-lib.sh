# shellcheck shell=bash
# Sourced by scripts/check-image.sh and bench/container-start.sh: what both need to run the image.
# A private podman for this run: everything it stores (images, containers, run state) lives in $work, a new folder that
# podman_cleanup removes, and it uses the flags that work on these machines: vfs storage, runc
# (crun refuses hybrid cgroups), cgroupfs, and no default ulimits (the sandbox refuses to raise
# RLIMIT_NPROC; `podman run` also gets --ulimit host). No registry is used: every image is built here.
# Defines: $work, pm (podman with those flags), podman_cleanup, build_image TAG (the Containerfile
# from dist/, for this machine's platform), $version and $binary (dist/'s static binary), and
# build_static_mock (the mock node, static, for the FROM-scratch containers: $mock).

work=$(mktemp -d /var/tmp/cosmovisor-podman.XXXXXX)
cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$work/containers.conf

pm() {
  podman --root "$work/storage" --runroot "$work/run" --tmpdir "$work/tmp" --storage-driver vfs \
    --runtime runc --cgroup-manager cgroupfs "$@"
}

# Removes every container and pod of this podman, then $work (unmounting what podman left mounted).
podman_cleanup() {
  pm pod rm --all --force --time 0 >/dev/null 2>&1 || true
  pm rm --all --force --time 0 >/dev/null 2>&1 || true
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$work"
}

version=$(cargo pkgid --quiet)
version=${version##*[#@]}
binary=dist/cosmovisor-$version-$(uname -m)-unknown-linux-musl

# podman build of the Containerfile (podman 4.3 needs the platform named to pick the binary).
build_image() {
  local platform
  case $(uname -m) in
    x86_64) platform=linux/amd64 ;;
    aarch64) platform=linux/arm64 ;;
    *) echo "no image platform for $(uname -m): the Containerfile has amd64 and arm64" >&2 && return 1 ;;
  esac
  [[ -x $binary ]] || { echo "no $binary: run scripts/release.sh first" >&2 && return 1; }
  pm build --quiet --platform "$platform" --build-arg "VERSION=$version" \
    --build-arg "SOURCE=https://example.invalid/cosmovisor" -t "$1" . >/dev/null
}

# The mock node (src/bin/mock_node.rs) as a static musl binary, with scripts/release.sh's
# environment so that the dependencies it compiled are reused. Sets $mock.
build_static_mock() {
  local target
  target="$(uname -m)-unknown-linux-musl"
  env "CC_${target//-/_}=musl-gcc" nice -n 10 cargo build --quiet --locked --release \
    --target "$target" --bin mock-node || return 1
  mock=target/$target/release/mock-node
  if readelf -lW "$mock" | grep -q 'Requesting program interpreter'; then
    echo "$mock is dynamically linked: it could not run in a FROM-scratch image" >&2
    return 1
  fi
}
