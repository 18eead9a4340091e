#!/usr/bin/env bash
# packaging/systemd: `systemd-analyze verify` prints nothing at all for each
# unit as the .deb installs it (the store template instantiated), and
# `systemd-analyze security --offline=true` rates each unit at or below
# the exposure docs/packaging.md records. The units are checked in a root
# made of the .deb's files plus the host's systemd units (sysinit.target
# and the like) and /bin/kill, so nothing is installed on this machine.
source "$(dirname "$0")/common.sh"
require_package_tree
require_tools systemd-analyze man
find_packages
# The highest overall exposure docs/packaging.md accepts (systemd's scale,
# 0 safest to 10); the units reach about 2.
MAX_EXPOSURE=${KVCACHED_MAX_EXPOSURE:-3.0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
dpkg-deb -x "$DEB" "$root"
mkdir -p "$root/usr/lib/systemd/system" "$root/bin"
cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/" 2>/dev/null ||
  cp -an /lib/systemd/system/. "$root/usr/lib/systemd/system/"
cp /bin/kill "$root/bin/kill"
errors=0
bad() {
  echo "FAILED: $*" >&2
  errors=$((errors + 1))
}

units=()
for u in ${UNITS//;/ }; do
  [[ $u == *@.service ]] && u=${u/@./@default.}
  units+=("$u")
done
# systemd-analyze looks the Documentation= man pages up with man(1).
export MANPATH=$root/usr/share/man
for u in "${units[@]}"; do
  out=$(systemd-analyze --root="$root" verify "$u" 2>&1) || bad "systemd-analyze verify $u exited $?"
  if [[ -n $out ]]; then
    bad "systemd-analyze verify $u printed:"
    echo "$out" >&2
  else
    note "systemd-analyze verify $u: no output"
  fi
done

for u in "${units[@]}"; do
  out=$(systemd-analyze security --offline=true --root="$root" "$u" 2>&1) || true
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  if [[ -z $level ]]; then
    echo "$out" >&2
    bad "systemd-analyze security $u gave no exposure level"
    continue
  fi
  note "systemd-analyze security --offline=true $u: $(grep 'Overall exposure' <<<"$out" | sed 's/^→ //')"
  if awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
    echo "$out" >&2
    bad "$u has exposure $level, above $MAX_EXPOSURE"
  fi
done

[[ $errors == 0 ]] || fail "$errors problem(s) in the units"
echo "units: verified without output, exposure at most $MAX_EXPOSURE"
