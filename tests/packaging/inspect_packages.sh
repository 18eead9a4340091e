#!/usr/bin/env bash
# packaging/contents: the .deb and the .rpm hold every promised file, mark
# the config files as conffiles, embed the maintainer scripts, have their
# dependencies computed, and ship stripped binaries; kvcached-mooncake-compat
# holds its link, its .pth and its page and nothing else, and depends on
# and conflicts with what it should.
source "$(dirname "$0")/common.sh"
require_package_tree
require_tools dpkg-deb rpm file python3
find_packages
errors=0
bad() {
  echo "FAILED: $*" >&2
  errors=$((errors + 1))
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

note "dpkg-deb -I $(basename "$DEB")"
dpkg-deb -I "$DEB" | tee "$tmp/info"
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's#^\./#/#; s#/$##' | sort >"$tmp/deb-files"
note "dpkg-deb -c: $(wc -l <"$tmp/deb-files") entries"
while read -r f; do
  grep -qxF "$f" "$tmp/deb-files" || bad ".deb lacks $f"
done < <(promised_files)

field() { dpkg-deb -f "$DEB" "$1"; }
[[ $(field Package) == kvcached ]] || bad "Package is '$(field Package)'"
[[ $(field Version) == "$DEB_VERSION" ]] || bad "Version is '$(field Version)', not $DEB_VERSION"
depends=$(field Depends)
for d in libc6 libstdc++6 libspdlog adduser procps; do
  [[ $depends == *"$d"* ]] || bad "Depends lacks $d (dpkg-shlibdeps or the fixed list): $depends"
done
[[ $(field Recommends) == *ibverbs-providers* ]] || bad "Recommends lacks ibverbs-providers"
[[ $(dpkg-deb -f "$DEB" Description | wc -l) -ge 5 ]] || bad "Description has no long text"

dpkg-deb -e "$DEB" "$tmp/control"
for s in postinst prerm postrm conffiles; do
  [[ -f $tmp/control/$s ]] || bad ".deb has no $s"
done
for s in postinst prerm postrm; do
  [[ -x $tmp/control/$s ]] || bad "$s is not executable"
  cmp -s "$tmp/control/$s" "$SOURCE_DIR/packaging/deb/$s" || bad "$s differs from packaging/deb/$s"
done
note "conffiles"
cat "$tmp/control/conffiles"
for f in ${CONFFILES//;/ }; do
  grep -qxF "$f" "$tmp/control/conffiles" || bad "$f is not a conffile"
done
[[ $(wc -l <"$tmp/control/conffiles") == $(echo "${CONFFILES//;/ }" | wc -w) ]] ||
  bad "conffiles lists files that are not config files"

dpkg-deb -x "$DEB" "$tmp/root"
file "$tmp/root$BINDIR/kvcached" | tee "$tmp/file"
grep -q 'not stripped' "$tmp/file" && bad "/usr/bin/kvcached is not stripped"
"$tmp/root$BINDIR/kvcached" --version >/dev/null || bad "the packaged binary does not run"
for u in ${UNITS//;/ }; do
  grep -q "^ExecStart=$BINDIR/kvcached " "$tmp/root$UNITDIR/$u" || bad "$u does not start $BINDIR/kvcached"
done
gzip -t "$tmp/root$MANDIR"/man*/*.gz || bad "a man page is not valid gzip"

# Files of one package, as absolute paths: deb_files PACKAGE.deb
deb_files() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's#^\./#/#; s#/$##' | sort; }
rpm_files() { rpm -qpl "$1" 2>/dev/null | sort; }
expect_in() {  # listing file, what, paths on stdin
  local f
  while read -r f; do grep -qxF "$f" "$1" || bad "$2 lacks $f"; done
}
if [[ $HAS_DEV == 1 ]]; then
  dpkg-deb -e "$DEB" "$tmp/control-server"
  [[ -f $tmp/control-server/shlibs ]] || bad "kvcached has no shlibs file for libkvcached.so.0"
  grep -qx 'activate-noawait ldconfig' "$tmp/control-server/triggers" || bad "kvcached has no ldconfig trigger"
  note "$(basename "$DEV_DEB"): $(dpkg-deb -f "$DEV_DEB" Depends)"
  deb_files "$DEV_DEB" >"$tmp/dev-files"
  promised_dev_files | expect_in "$tmp/dev-files" "kvcached-dev (.deb)"
  rpm_files "$DEV_RPM" >"$tmp/dev-rpm-files"
  promised_dev_files | expect_in "$tmp/dev-rpm-files" "kvcached-dev (.rpm)"
fi
if [[ $HAS_PYTHON == 1 ]]; then
  note "$(basename "$PY_DEB"): $(dpkg-deb -f "$PY_DEB" Depends)"
  [[ $(dpkg-deb -f "$PY_DEB" Depends) == *python3* ]] || bad "python3-kvcached does not depend on python3"
  deb_files "$PY_DEB" >"$tmp/py-files"
  promised_python_files | expect_in "$tmp/py-files" "python3-kvcached (.deb)"
  grep -q '__pycache__\|\.pyc$' "$tmp/py-files" && bad "python3-kvcached ships compiled bytecode"
  dpkg-deb -e "$PY_DEB" "$tmp/control-py"
  for sc in postinst prerm; do
    cmp -s "$tmp/control-py/$sc" "$SOURCE_DIR/packaging/deb/python3-kvcached/$sc" ||
      bad "python3-kvcached's $sc differs from packaging/deb/python3-kvcached/$sc"
  done
  rpm_files "$PY_RPM" >"$tmp/py-rpm-files"
  promised_python_files | expect_in "$tmp/py-rpm-files" "python3-kvcached (.rpm)"
fi
if [[ $HAS_COMPAT == 1 ]]; then
  note "dpkg-deb -I $(basename "$COMPAT_DEB")"
  dpkg-deb -I "$COMPAT_DEB"
  # Exactly its files: nothing of another package's. The .deb lists the
  # directories above them too; the .rpm claims its doc directory and, as
  # the others do, the lintian overrides directory (no package owns it on
  # an RPM system).
  promised_compat_files | sort >"$tmp/compat-promised"
  deb_files "$COMPAT_DEB" >"$tmp/compat-files"
  expect_in "$tmp/compat-files" "kvcached-mooncake-compat (.deb)" <"$tmp/compat-promised"
  rpm_files "$COMPAT_RPM" >"$tmp/compat-rpm-files"
  expect_in "$tmp/compat-rpm-files" "kvcached-mooncake-compat (.rpm)" <"$tmp/compat-promised"
  while read -r f; do
    while [[ -n $f ]]; do echo "$f"; f=${f%/*}; done
  done <"$tmp/compat-promised" | sort -u >"$tmp/compat-deb-allowed"
  { cat "$tmp/compat-promised"; printf '%s\n' "$PREFIX/share/doc/kvcached-mooncake-compat" \
      "$PREFIX/share/lintian" "$PREFIX/share/lintian/overrides"; } >"$tmp/compat-rpm-allowed"
  for kind in deb rpm; do
    listing=$tmp/compat-files
    [[ $kind == rpm ]] && listing=$tmp/compat-rpm-files
    while read -r f; do
      [[ -z $f ]] || grep -qxF "$f" "$tmp/compat-$kind-allowed" ||
        bad "kvcached-mooncake-compat (.$kind) holds $f, which is not its own"
    done <"$listing"
  done
  dpkg-deb -x "$COMPAT_DEB" "$tmp/compat-root"
  [[ -L $tmp/compat-root$BINDIR/mooncake_master ]] || bad "$BINDIR/mooncake_master is not a link"
  [[ $(readlink "$tmp/compat-root$BINDIR/mooncake_master") == kvcached ]] ||
    bad "$BINDIR/mooncake_master points at '$(readlink "$tmp/compat-root$BINDIR/mooncake_master")', not kvcached"
  # The .pth is what kvcached.shim (from the python3-kvcached package) says
  # the package's must be: the line `kvcached.shim install` writes.
  dpkg-deb -x "$PY_DEB" "$tmp/py-root"
  PYTHONPATH=$tmp/py-root$PYTHONDIR python3 -c \
    "import sys; from kvcached.shim import package_pth_text; print(package_pth_text(sys.argv[1]), end='')" \
    "$PYTHONDIR/kvcached/_shim" >"$tmp/expected.pth" || bad "kvcached.shim has no package_pth_text"
  cmp -s "$tmp/expected.pth" "$tmp/compat-root$PYTHONDIR/kvcached-mooncake-shim.pth" ||
    bad "kvcached-mooncake-shim.pth is not what kvcached.shim.package_pth_text() makes:
$(diff "$tmp/expected.pth" "$tmp/compat-root$PYTHONDIR/kvcached-mooncake-shim.pth")"
  gzip -t "$tmp/compat-root$MANDIR"/man*/*.gz || bad "a man page of kvcached-mooncake-compat is not valid gzip"

  cfield() { dpkg-deb -f "$COMPAT_DEB" "$1"; }
  want_depends="python3:any, kvcached (= $DEB_VERSION), python3-kvcached (= $DEB_VERSION)"
  want_conflicts="mooncake, mooncake-transfer-engine, python3-mooncake"
  [[ $(cfield Depends) == "$want_depends" ]] ||
    bad "kvcached-mooncake-compat: Depends is '$(cfield Depends)', not '$want_depends'"
  [[ $(cfield Conflicts) == "$want_conflicts" ]] ||
    bad "kvcached-mooncake-compat: Conflicts is '$(cfield Conflicts)', not '$want_conflicts'"
  [[ -z $(cfield Provides) ]] || bad "kvcached-mooncake-compat provides '$(cfield Provides)'"
  [[ $(cfield Description | wc -l) -ge 5 ]] || bad "kvcached-mooncake-compat's Description has no long text"
  dpkg-deb -e "$COMPAT_DEB" "$tmp/control-compat"
  [[ $(ls "$tmp/control-compat") == $'control\nmd5sums' ]] ||
    bad "kvcached-mooncake-compat has control files besides control and md5sums: $(ls "$tmp/control-compat" | tr '\n' ' ')"

  note "rpm -qpR / --conflicts $(basename "$COMPAT_RPM")"
  rpm -qpR "$COMPAT_RPM" 2>/dev/null | tee "$tmp/compat-requires"
  for r in "kvcached = $DEB_VERSION" "python3-kvcached = $DEB_VERSION"; do
    grep -qxF "$r" "$tmp/compat-requires" || bad "kvcached-mooncake-compat (.rpm) does not require '$r'"
  done
  rpm -qp --conflicts "$COMPAT_RPM" 2>/dev/null | sort | tee "$tmp/compat-conflicts"
  [[ $(tr '\n' ' ' <"$tmp/compat-conflicts") == "mooncake mooncake-transfer-engine python3-mooncake " ]] ||
    bad "kvcached-mooncake-compat (.rpm) conflicts with '$(tr '\n' ' ' <"$tmp/compat-conflicts")'"
fi

note "rpm -qpi $(basename "$RPM")"
rpm -qpi "$RPM" 2>/dev/null
rpm -qpl "$RPM" 2>/dev/null | sort >"$tmp/rpm-files"
note "rpm -qpl: $(wc -l <"$tmp/rpm-files") entries"
while read -r f; do
  grep -qxF "$f" "$tmp/rpm-files" || bad ".rpm lacks $f"
done < <(promised_files)
for d in /etc /usr /usr/bin /usr/lib /usr/lib/systemd /usr/lib/systemd/system /etc/default /usr/share/man/man1; do
  grep -qxF "$d" "$tmp/rpm-files" && bad ".rpm claims the system directory $d"
done
rpm -qpc "$RPM" 2>/dev/null | sort >"$tmp/rpm-conf"
for f in ${CONFFILES//;/ }; do
  grep -qxF "$f" "$tmp/rpm-conf" || bad "$f is not %config in the .rpm"
done
note "rpm -qp --scripts"
rpm -qp --scripts "$RPM" 2>/dev/null | tee "$tmp/rpm-scripts"
for s in preinstall postinstall preuninstall postuninstall; do
  grep -q "^$s scriptlet" "$tmp/rpm-scripts" || bad ".rpm has no $s scriptlet"
done
grep -q 'useradd -r -g kvcached' "$tmp/rpm-scripts" || bad "the .rpm does not create the kvcached user"
rpm -qpR "$RPM" 2>/dev/null | grep -q 'libspdlog' || bad ".rpm requirements were not computed"
rpm -qp --changelog "$RPM" 2>/dev/null | grep -q "$DEB_VERSION" || bad ".rpm has no changelog entry for $DEB_VERSION"

[[ $errors == 0 ]] || fail "$errors problem(s) in the packages"
echo "packages hold every promised file"
