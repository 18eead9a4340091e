#!/usr/bin/env bash
# Makes (once) and caches a minimal Debian 12 root for the install test:
#   tests/packaging/debian_root.sh CACHE_DIR
# prints the cached root's path. debootstrap downloads from Debian's registry
# the first time (a few minutes); later calls only print the path. The root
# gets the host's apt sources (bookworm, -updates, -security) so that the
# .deb's dependencies resolve against the same releases it was built with,
# and systemd, whose unit directory and target units `systemd-analyze
# --root` needs to verify the installed units.
set -euo pipefail
cache=${1:?usage: debian_root.sh CACHE_DIR}
root=$cache/bookworm-root
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9
if [[ -f $root/.root-complete ]]; then
  echo "$root"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; exit 3; }
rm -rf "$root" "$root.partial"
mirror=http://deb.debian.org/debian
echo "creating a Debian 12 root with debootstrap in $root (once; cached)" >&2
if ! debootstrap --variant=minbase --include=systemd bookworm "$root.partial" "$mirror" \
    >"$cache/debootstrap.log" 2>&1; then
  tail -n 20 "$cache/debootstrap.log" >&2
  echo "debootstrap failed (log: $cache/debootstrap.log)" >&2
  exit 4
fi
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  cp /etc/apt/sources.list.d/debian.sources "$root.partial/etc/apt/sources.list.d/"
  rm -f "$root.partial/etc/apt/sources.list"
fi
# Downloaded packages are kept in the root's apt cache between runs.
rm -f "$root.partial/etc/apt/apt.conf.d/docker-clean"
touch "$root.partial/.root-complete"
mv "$root.partial" "$root"
echo "$root"
