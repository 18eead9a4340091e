#!/usr/bin/env bash
# packaging/man: the committed roff pages match their sources, groff
# renders every page the packages install (mooncake_master(1), written in
# roff by hand, included) without a warning, and every long option that
# `kvcached <subcommand> --help` prints is documented in kvcached(1), and
# nothing is documented in a subcommand's section that its --help does not
# print. Needs the binary only, so it runs in every build tree.
# Usage: man_pages.sh BUILD_DIR SOURCE_DIR KVCACHED_BINARY
source "$(dirname "$0")/common.sh"
BIN=${3:?usage: man_pages.sh BUILD_DIR SOURCE_DIR KVCACHED_BINARY}
require_tools groff python3
MAN=$SOURCE_DIR/man
errors=0
bad() {
  echo "FAILED: $*" >&2
  errors=$((errors + 1))
}

for src in "$MAN"/*.md; do
  page=${src%.md}
  if ! python3 "$MAN/md2roff.py" "$src" | cmp -s - "$page"; then
    bad "$(basename "$page") is not what man/md2roff.py makes of $(basename "$src"): run 'man/md2roff.py $src > $page'"
  fi
done
pages="${MAN_PAGES//;/ } ${COMPAT_MAN_PAGES//;/ }"
for page in $pages; do
  [[ -f $MAN/$page ]] || { bad "man/$page is missing"; continue; }
  out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$MAN/$page" 2>&1)
  [[ -z $out ]] || bad "groff -man -ww -z man/$page: $out"
  note "groff -man -ww -z man/$page: silent"
done
# A page in man/ that no package installs is checked by nothing above.
for page in "$MAN"/*.[1-8]; do
  [[ " $pages " == *" $(basename "$page") "* ]] ||
    bad "man/$(basename "$page") is in no package (KVCACHED_MAN_PAGES or KVCACHED_COMPAT_MAN_PAGES)"
done

# The page as text: no font escapes, \- as -.
text=$(sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g' "$MAN/kvcached.1")
# The part of the page about one subcommand: from its section to the next.
section_of() {
  awk -v h=".SH \"KVCACHED $(echo "$1" | tr a-z A-Z)\"" '
    $0 == h { on = 1; next }
    on && /^\.SH / { exit }
    on' "$MAN/kvcached.1" | sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g'
}
# stdout only, and the exit status aside: a sanitizer build may report at exit.
help_of() { "$BIN" "$@" --help 2>/dev/null || true; }
subcommands=$(help_of | awk '/^Subcommands:/ { on = 1; next } on && !NF { exit } on { print $1 }')
[[ -n $subcommands ]] || bad "kvcached --help lists no subcommands"
for sub in $subcommands; do
  help=$(help_of "$sub")
  grep -q '^Usage:' <<<"$help" || { bad "kvcached $sub --help printed no usage"; continue; }
  options=$(grep -oE -- '--[a-z][a-z0-9_-]*' <<<"$help" | sort -u)
  grep -q "^\.SH \"KVCACHED $(echo "$sub" | tr a-z A-Z)\"" "$MAN/kvcached.1" ||
    bad "kvcached(1) has no section KVCACHED $(echo "$sub" | tr a-z A-Z)"
  missing=0
  for opt in $options; do
    if ! grep -qE -- "(^|[^A-Za-z0-9_-])${opt}([^A-Za-z0-9_-]|\$)" <<<"$text"; then
      bad "kvcached $sub --help prints $opt but kvcached(1) does not document it"
      missing=$((missing + 1))
    fi
  done
  note "kvcached $sub: $(wc -w <<<"$options") options in --help, $missing undocumented"
  # Documented for this subcommand (its section, plus the shared sections)
  # but unknown to --help: the page is ahead of or behind the code.
  for opt in $(section_of "$sub" | grep -oE -- '--[A-Za-z][A-Za-z0-9_-]*' | sort -u); do
    grep -qxF -- "$opt" <<<"$options" ||
      bad "kvcached(1) documents $opt for kvcached $sub, but kvcached $sub --help does not print it"
  done
done

[[ $errors == 0 ]] || fail "$errors problem(s) in the man pages"
echo "man pages: in step with their sources and with --help, groff-clean"
