#!/usr/bin/env bash
# Checks the Debian packages that scripts/release.sh wrote into dist/: control fields, maintainer
# scripts that leave running nodes alone, the exact list of files with their modes, a real
# `dpkg -i` and `dpkg --purge` (into a private root) of this machine's package, the installed files
# (binary, man page, completions, units, example environment), `systemd-analyze verify` of both units against the packaged binary and man
# page, their `systemd-analyze security --offline=true` exposure (3.0 or less, OK), the template's
# refusal of the `root` instance, `cosmovisor doctor --unit` on an instance of the template unit, and lintian (no error, no
# warning; overrides are justified in debian/cosmovisor.lintian-overrides).
#
# Usage: scripts/release.sh && scripts/check-package.sh
# Needs: dpkg-deb, lintian, systemd-analyze, man (man-db).
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
fail() {
  echo "check-package.sh: $*" >&2
  failures=$((failures + 1))
}
die() {
  echo "check-package.sh: $*" >&2
  exit 1
}

for tool in dpkg-deb lintian systemd-analyze man; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: apt-get install dpkg lintian systemd man-db"
done
version=$(cargo pkgid --quiet)
version=${version##*[#@]}
shopt -s nullglob
debs=(dist/cosmovisor_"$version"-1_*.deb)
((${#debs[@]})) || die "no dist/cosmovisor_$version-1_*.deb: run scripts/release.sh first"
host_deb=dist/cosmovisor_$version-1_$(dpkg --print-architecture).deb
[[ -f $host_deb ]] || die "no $host_deb for this machine: run scripts/release.sh first"

# Every file the package installs, with its mode.
expected="-rw-r--r-- ./lib/systemd/system/cosmovisor.service
-rw-r--r-- ./lib/systemd/system/cosmovisor@.service
-rw-r--r-- ./usr/share/bash-completion/completions/cosmovisor
-rw-r--r-- ./usr/share/doc/cosmovisor/README.md
-rw-r--r-- ./usr/share/doc/cosmovisor/changelog.Debian.gz
-rw-r--r-- ./usr/share/doc/cosmovisor/copyright
-rw-r--r-- ./usr/share/doc/cosmovisor/examples/panacea.env
-rw-r--r-- ./usr/share/fish/vendor_completions.d/cosmovisor.fish
-rw-r--r-- ./usr/share/lintian/overrides/cosmovisor
-rw-r--r-- ./usr/share/man/man1/cosmovisor.1.gz
-rw-r--r-- ./usr/share/zsh/vendor-completions/_cosmovisor
-rwxr-xr-x ./usr/bin/cosmovisor"

for deb in "${debs[@]}"; do
  echo "== $deb"
  arch=${deb##*_}
  arch=${arch%.deb}
  for field in "Package: cosmovisor" "Version: $version-1" "Architecture: $arch" "Section: admin"; do
    dpkg-deb -f "$deb" "${field%%:*}" | grep -qx "${field#*: }" || fail "$deb: control field is not '$field'"
  done
  [[ -z $(dpkg-deb -f "$deb" Depends) ]] || fail "$deb depends on '$(dpkg-deb -f "$deb" Depends)': the static binary needs nothing"
  # Installing or upgrading the package must never stop, start or restart a node.
  for script in postinst postrm; do
    if ! body=$(dpkg-deb -I "$deb" "$script" 2>/dev/null); then
      fail "$deb has no $script (it runs systemctl daemon-reload)"
    elif grep -v '^ *#' <<<"$body" | grep -qE 'systemctl [^|]*(start|stop|enable)|deb-systemd-invoke'; then
      fail "$deb: $script starts, stops or enables a unit: an upgrade must leave running nodes alone"
    fi
  done
  listed=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $1, $6}' | sort -k2)
  [[ $listed == "$(sort -k2 <<<"$expected")" ]] \
    || fail "$deb holds other files than expected:$(diff <(sort -k2 <<<"$expected") <(echo "$listed") | grep '^[<>]' | sed 's/^/ /' | tr '\n' ';')"
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "== dpkg -i $host_deb into a private root"
# A real install (maintainer scripts included) into an empty dpkg database under $pkg; the checks
# below look at the installed files, and the package is purged at the end.
pkg=$root/pkg
mkdir -p "$pkg/var/lib/dpkg/info" "$pkg/var/lib/dpkg/updates"
touch "$pkg/var/lib/dpkg/status" "$pkg/var/lib/dpkg/available"
dpkg_root=(dpkg --root="$pkg" --force-script-chrootless --force-not-root --log=/dev/null)
out=$("${dpkg_root[@]}" -i "$host_deb" 2>&1) || die "dpkg -i $host_deb failed: $out"
dpkg --root="$pkg" -s cosmovisor 2>/dev/null | grep -qx 'Status: install ok installed' \
  || fail "dpkg does not list cosmovisor as installed after dpkg -i $host_deb"
cmp -s "$pkg/usr/bin/cosmovisor" "dist/cosmovisor-$version-$(uname -m)-unknown-linux-musl" \
  || fail "$host_deb: usr/bin/cosmovisor differs from dist/cosmovisor-$version-$(uname -m)-unknown-linux-musl"
said=$(env -i "$pkg/usr/bin/cosmovisor" version --cosmovisor-only) || fail "the packaged binary does not run"
[[ ${said:-} == "cosmovisor version: v$version" ]] || fail "the packaged binary says '${said:-}', expected 'cosmovisor version: v$version'"
zcat "$pkg/usr/share/man/man1/cosmovisor.1.gz" | head -n1 | grep -q '^\.TH cosmovisor 1' \
  || fail "usr/share/man/man1/cosmovisor.1.gz is not the cosmovisor(1) man page"
MANPATH=$pkg/usr/share/man man -w cosmovisor >/dev/null 2>&1 || fail "man does not find cosmovisor(1) in the package's man folder"
grep -q 'complete -F _cosmovisor' "$pkg/usr/share/bash-completion/completions/cosmovisor" || fail "bash completion has no 'complete -F _cosmovisor'"
head -n1 "$pkg/usr/share/zsh/vendor-completions/_cosmovisor" | grep -qx '#compdef cosmovisor' || fail "zsh completion does not start with '#compdef cosmovisor'"
grep -q '^complete -c cosmovisor' "$pkg/usr/share/fish/vendor_completions.d/cosmovisor.fish" || fail "fish completion has no 'complete -c cosmovisor'"

template=$pkg/lib/systemd/system/cosmovisor@.service
for line in Type=notify NotifyAccess=main WatchdogSec=60s KillMode=mixed KillSignal=SIGTERM \
  User=%i 'EnvironmentFile=/etc/cosmovisor/%i.env' 'ExecStart=/usr/bin/cosmovisor run start'; do
  grep -qxF "$line" "$template" || fail "cosmovisor@.service has no line '$line'"
done
grep -q '^ExecStart=/usr/bin/cosmovisor ' "$pkg/lib/systemd/system/cosmovisor.service" \
  || fail "cosmovisor.service does not run /usr/bin/cosmovisor"

echo "== systemd-analyze verify"
# verify needs ExecStart's binary and Documentation='s man page: use the package's.
mkdir "$root/units"
for unit in cosmovisor.service cosmovisor@.service; do
  sed "s|/usr/bin/cosmovisor|$pkg/usr/bin/cosmovisor|g" "$pkg/lib/systemd/system/$unit" >"$root/units/$unit"
  if ! out=$(MANPATH=$pkg/usr/share/man systemd-analyze verify "$root/units/$unit" 2>&1) || [[ -n $out ]]; then
    fail "systemd-analyze verify $unit: $out"
  fi
done

echo "== systemd-analyze security --offline=true (exposure <= 3.0, OK)"
# The hardening of both units, as systemd rates it (docs: README "Packaging").
for unit in cosmovisor.service cosmovisor@.service; do
  out=$(systemd-analyze security --offline=true "$root/units/$unit" 2>&1 | tail -n1)
  if [[ $out =~ Overall\ exposure\ level\ for\ [^:]+:\ ([0-9]+\.[0-9]+)\ ([A-Z]+) ]]; then
    figure=${BASH_REMATCH[1]} rating=${BASH_REMATCH[2]}
    echo "$unit: exposure $figure $rating"
    awk -v x="$figure" 'BEGIN { exit !(x <= 3.0) }' && [[ $rating == OK ]] \
      || fail "$unit: systemd-analyze security rates it $figure $rating, expected 3.0 or less (OK)"
  else
    fail "systemd-analyze security $unit said no exposure level: $out"
  fi
done

echo "== cosmovisor@root refuses to start"
# The template's ExecCondition, as systemd runs it for the instance `root` (%i, %n expanded, $$ is
# a literal $), run as root: it must fail and say why; run as another user it must pass.
condition=$(sed -n 's/^ExecCondition=//p' "$template" | sed -e 's/%n/cosmovisor@root.service/g' -e 's/%i/root/g' -e 's/\$\$/$/g')
[[ -n $condition ]] || fail "cosmovisor@.service has no ExecCondition= refusing the root instance"
if [[ -n $condition ]]; then
  if ((EUID == 0)); then
    if out=$(eval "$condition" 2>&1); then
      fail "cosmovisor@root.service: the ExecCondition let root start the node"
    elif [[ $out != *"refusing to run the node as root"* ]]; then
      fail "cosmovisor@root.service: the ExecCondition failed without saying why: $out"
    fi
    out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "$condition" 2>&1) \
      || fail "cosmovisor@nobody: the ExecCondition refused an ordinary user: $out"
  else
    echo "note: not root: the refusal of cosmovisor@root is not exercised" >&2
  fi
fi

echo "== cosmovisor doctor --unit on cosmovisor@panacea.service"
# An instance as systemd makes it (%i = panacea), reading the example environment with a home
# that exists; doctor must find nothing wrong, the unit's stop settings included.
home=$root/home
mkdir -p "$home/data" "$home/cosmovisor/genesis/bin"
printf '#!/bin/sh\necho v2.0.6\n' >"$home/cosmovisor/genesis/bin/panacead"
chmod 755 "$home/cosmovisor/genesis/bin/panacead"
sed "s|^DAEMON_HOME=.*|DAEMON_HOME=$home|" "$pkg/usr/share/doc/cosmovisor/examples/panacea.env" >"$root/panacea.env"
sed -e "s|/etc/cosmovisor/%i.env|$root/panacea.env|" -e 's|%i|panacea|g' "$template" >"$root/cosmovisor@panacea.service"
if ! out=$(env -i PATH=/usr/bin:/bin "$pkg/usr/bin/cosmovisor" doctor --unit "$root/cosmovisor@panacea.service" 2>&1); then
  fail "cosmovisor doctor --unit cosmovisor@panacea.service found problems:
$out"
fi
grep -q 'TimeoutStopSec=120 leaves room for DAEMON_SHUTDOWN_GRACE (30s)' <<<"$out" \
  || fail "doctor did not check the template unit's TimeoutStopSec against the example's DAEMON_SHUTDOWN_GRACE:
$out"

echo "== dpkg --purge cosmovisor"
out=$("${dpkg_root[@]}" --purge cosmovisor 2>&1) || fail "dpkg --purge cosmovisor failed: $out"
left=$(cd "$pkg" && find . ! -type d ! -path './var/lib/dpkg/*')
[[ -z $left ]] || fail "dpkg --purge cosmovisor left files behind: $left"

echo "== lintian"
out=$(lintian --fail-on error,warning "${debs[@]}" 2>&1) || fail "lintian reports errors or warnings:
$out"

if ((failures)); then
  echo "check-package.sh: $failures checks failed" >&2
  exit 1
fi
echo "check-package.sh: all package checks passed (${debs[*]})"
