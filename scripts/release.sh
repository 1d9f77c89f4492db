#!/usr/bin/env bash
# Builds the release files into dist/: a static (musl) cosmovisor binary per architecture, the
# Debian package per architecture (cargo-deb, [package.metadata.deb] in Cargo.toml) and SHA256SUMS.
# Then it proves the binary for this machine is static and runs `version --cosmovisor-only` in an
# empty root (chroot into a folder holding only the binary: no libc, no /etc, no /proc).
#
# Usage: scripts/release.sh [--target TRIPLE]... [--no-deb]
#   default targets: this machine's <arch>-unknown-linux-musl, and aarch64-unknown-linux-musl when
#   the cross linker aarch64-linux-gnu-gcc is installed (Debian: gcc-aarch64-linux-gnu).
# Needs: rustup, musl-tools (musl-gcc compiles ring's C code), cargo-deb (`cargo install cargo-deb
# --locked`) unless --no-deb, and root or password-less sudo for the chroot check.
# The first run compiles everything: several minutes per architecture on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "release.sh: $*" >&2
  exit 1
}

host_target="$(uname -m)-unknown-linux-musl"
targets=()
deb=true
while (($#)); do
  case $1 in
    --target)
      (($# >= 2)) || die "--target needs a target triple, e.g. --target aarch64-unknown-linux-musl"
      targets+=("$2")
      shift 2
      ;;
    --no-deb)
      deb=false
      shift
      ;;
    *) die "unknown argument '$1': use --target TRIPLE (repeatable) or --no-deb" ;;
  esac
done
if ((${#targets[@]} == 0)); then
  targets=("$host_target")
  if [[ $host_target != aarch64-unknown-linux-musl ]]; then
    if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
      targets+=(aarch64-unknown-linux-musl)
    else
      echo "note: aarch64-unknown-linux-musl skipped: no cross linker aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)"
    fi
  fi
fi
# The man page and completions come from the binary for this machine, and the checks run it.
[[ " ${targets[*]} " == *" $host_target "* ]] \
  || die "the targets (${targets[*]}) must include this machine's $host_target: it runs the checks and writes the man page"

command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc not found: install musl-tools (apt-get install musl-tools)"
if $deb && ! cargo deb --version >/dev/null 2>&1; then
  die "cargo-deb not found: install it with 'cargo install cargo-deb --locked', or pass --no-deb"
fi
if (($(id -u) == 0)); then
  as_root=()
elif sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  die "the empty-root check needs chroot: run as root or with password-less sudo"
fi

version=$(cargo pkgid --quiet)
version=${version##*[#@]}
profile=release
changelog=$(head -n1 debian/changelog)
[[ $changelog == "cosmovisor ($version-1) "* ]] \
  || die "debian/changelog starts with '$changelog', not version $version-1 of Cargo.toml: add an entry for $version-1 at its top"

for target in "${targets[@]}"; do
  echo "== building cosmovisor $version for $target"
  rustup target add "$target" >/dev/null || die "could not add the Rust standard library for $target: rustup target add $target"
  triple_env=${target//-/_}
  if [[ $target == aarch64-unknown-linux-musl && $host_target != "$target" ]]; then
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
      || die "no cross linker for $target: install gcc-aarch64-linux-gnu"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    export "CC_$triple_env=aarch64-linux-gnu-gcc"
  else
    export "CC_$triple_env=musl-gcc"
  fi
  nice -n 10 cargo build --locked --profile "$profile" --target "$target" --bin cosmovisor
done

bin=target/$host_target/$profile/cosmovisor
echo "== checking that $bin is static"
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  die "$bin has a program interpreter (PT_INTERP): it is dynamically linked"
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
  die "$bin needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
fi
file "$bin" | grep -q 'static' || die "file(1) does not call $bin static: $(file "$bin")"

echo "== running $bin in an empty root"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/cosmovisor"
said=$("${as_root[@]}" env -i "$(command -v chroot)" "$root" /cosmovisor version --cosmovisor-only) \
  || die "cosmovisor version --cosmovisor-only failed in the empty root $root"
[[ $said == "cosmovisor version: v$version" ]] \
  || die "in the empty root, 'cosmovisor version --cosmovisor-only' said '$said', expected 'cosmovisor version: v$version'"
echo "$said"

rm -rf dist
mkdir -p dist
for target in "${targets[@]}"; do
  cp "target/$target/$profile/cosmovisor" "dist/cosmovisor-$version-$target"
done

if $deb; then
  # Files the package installs that are not in the repository as they are installed.
  assets=target/deb-assets
  rm -rf "$assets"
  mkdir -p "$assets"
  "$bin" man >"$assets/cosmovisor.1"
  gzip -9n "$assets/cosmovisor.1"
  for shell in bash zsh fish; do
    "$bin" completion "$shell" >"$assets/cosmovisor.$shell"
  done
  # The single-instance unit, with the package's path of the binary.
  sed 's|/usr/local/bin/cosmovisor|/usr/bin/cosmovisor|g' contrib/systemd/cosmovisor.service >"$assets/cosmovisor.service"
  grep -q '^ExecStart=/usr/bin/cosmovisor ' "$assets/cosmovisor.service" \
    || die "contrib/systemd/cosmovisor.service has no ExecStart=/usr/local/bin/cosmovisor to point at /usr/bin/cosmovisor"
  for target in "${targets[@]}"; do
    echo "== packaging $target"
    nice -n 10 cargo deb --locked --no-build --profile "$profile" --target "$target" --output dist/
  done
fi

(cd dist && sha256sum -- * >SHA256SUMS)
echo "== dist/"
ls -l dist
