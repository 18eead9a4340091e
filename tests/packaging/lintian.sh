#!/usr/bin/env bash
# packaging/lintian: lintian finds no error and no warning in the .deb
# files; each tag overridden in packaging/lintian-overrides says why there.
source "$(dirname "$0")/common.sh"
require_package_tree
require_tools lintian
find_packages
debs=("${ALL_DEBS[@]}")
note "lintian --show-overrides ${debs[*]##*/}"
out=$(lintian --show-overrides --tag-display-limit 0 "${debs[@]}" 2>&1) || true
[[ -z $out ]] || echo "$out"
if grep -E '^[EW]: ' <<<"$out"; then
  fail "lintian reported the errors or warnings above"
fi
# A lintian that could not run prints no tags at all; make sure it read them.
lintian --print-version >/dev/null || fail "lintian does not run"
echo "lintian: no errors, no warnings"
