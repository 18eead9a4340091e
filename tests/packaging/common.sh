# Sourced by the packaging tests: the build tree's layout, the package
# files, and skip/fail helpers. Each test is one bash script run by ctest
# with the build directory as $1 and the source directory as $2; exit 77
# is a skip (SKIP_RETURN_CODE), always with the reason printed first.
set -euo pipefail

BUILD_DIR=$(readlink -f "${1:?usage: $0 BUILD_DIR SOURCE_DIR}")
SOURCE_DIR=$(readlink -f "${2:?usage: $0 BUILD_DIR SOURCE_DIR}")
PKG_DIR=$BUILD_DIR/packages
LAYOUT=$BUILD_DIR/packaging/layout.env

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
note() { printf '== %s\n' "$*"; }

[[ -f $LAYOUT ]] || fail "$LAYOUT is missing: cmake/Packaging.cmake was not included"
# shellcheck source=/dev/null
source "$LAYOUT"

# The packages are made from the default build; a sanitizer build's binary
# is no product, and testing packages twice would double the suite's time.
require_package_tree() {
  [[ $SANITIZE == 0 ]] ||
    skip "sanitizer build (KVCACHED_SANITIZE=ON): packages are built and tested from the default build's tree"
  [[ $PREFIX == /usr ]] ||
    skip "this tree was configured with CMAKE_INSTALL_PREFIX=$PREFIX; packages need /usr (configure without a prefix or with -DCMAKE_INSTALL_PREFIX=/usr)"
}

require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || skip "$t is not installed (scripts/quickstart.sh test installs it)"
  done
}

# Sets DEB, DEV_DEB, PY_DEB, COMPAT_DEB and RPM, DEV_RPM, PY_RPM, COMPAT_RPM
# to the package files made by packaging/build, and ALL_DEBS, ALL_RPMS to
# those this tree makes.
find_packages() {
  local arch
  arch=$(dpkg --print-architecture)
  DEB=$PKG_DIR/kvcached_${DEB_VERSION}_$arch.deb
  DEV_DEB=$PKG_DIR/kvcached-dev_${DEB_VERSION}_$arch.deb
  PY_DEB=$PKG_DIR/python3-kvcached_${DEB_VERSION}_all.deb
  RPM=$PKG_DIR/kvcached-${DEB_VERSION}.$(uname -m).rpm
  DEV_RPM=$PKG_DIR/kvcached-dev-${DEB_VERSION}.$(uname -m).rpm
  PY_RPM=$PKG_DIR/python3-kvcached-${DEB_VERSION}.noarch.rpm
  COMPAT_DEB=$PKG_DIR/kvcached-mooncake-compat_${DEB_VERSION}_all.deb
  COMPAT_RPM=$PKG_DIR/kvcached-mooncake-compat-${DEB_VERSION}.noarch.rpm
  [[ -f $DEB && -f $RPM ]] ||
    fail "no packages in $PKG_DIR (packaging/build makes them): $(ls "$PKG_DIR" 2>/dev/null | tr '\n' ' ')"
  ALL_DEBS=("$DEB")
  ALL_RPMS=("$RPM")
  if [[ $HAS_DEV == 1 ]]; then
    [[ -f $DEV_DEB && -f $DEV_RPM ]] || fail "the client library is built but kvcached-dev packages are missing"
    ALL_DEBS+=("$DEV_DEB")
    ALL_RPMS+=("$DEV_RPM")
  fi
  if [[ $HAS_PYTHON == 1 ]]; then
    [[ -f $PY_DEB && -f $PY_RPM ]] || fail "python/kvcached exists but python3-kvcached packages are missing"
    ALL_DEBS+=("$PY_DEB")
    ALL_RPMS+=("$PY_RPM")
  fi
  if [[ $HAS_COMPAT == 1 ]]; then
    [[ -f $COMPAT_DEB && -f $COMPAT_RPM ]] ||
      fail "python/kvcached exists but kvcached-mooncake-compat packages are missing"
    ALL_DEBS+=("$COMPAT_DEB")
    ALL_RPMS+=("$COMPAT_RPM")
  fi
}

# The files each package must hold, one absolute path a line.
promised_files() {
  local f
  echo "$BINDIR/kvcached"
  for f in ${UNITS//;/ }; do echo "$UNITDIR/$f"; done
  for f in ${CONFFILES//;/ }; do echo "$f"; done
  for f in ${MAN_PAGES//;/ }; do echo "$MANDIR/man${f##*.}/$f.gz"; done
  echo "$DOCDIR/copyright"
  echo "$DOCDIR/changelog.Debian.gz"
  echo "$DOCDIR/README.md"
  echo "$DOCDIR/docs/configuration.md"
  echo "$PREFIX/share/lintian/overrides/kvcached"
  if [[ $HAS_DEV == 1 ]]; then
    echo "$LIBDIR/libkvcached.so.0"
    echo "$LIBDIR/libkvcached.so.$VERSION"
  fi
}
promised_dev_files() {
  echo "$LIBDIR/libkvcached.so"
  echo "$INCLUDEDIR/kvcached/kvcached.h"
  echo "$PREFIX/share/doc/kvcached-dev/copyright"
}
promised_python_files() {
  echo "$PYTHONDIR/kvcached/__init__.py"
  echo "$PREFIX/share/doc/python3-kvcached/copyright"
}
# Every file of kvcached-mooncake-compat (it has no others).
promised_compat_files() {
  local f doc=$PREFIX/share/doc/kvcached-mooncake-compat
  echo "$BINDIR/mooncake_master"
  echo "$PYTHONDIR/kvcached-mooncake-shim.pth"
  for f in ${COMPAT_MAN_PAGES//;/ }; do echo "$MANDIR/man${f##*.}/$f.gz"; done
  echo "$doc/copyright"
  echo "$doc/changelog.Debian.gz"
  echo "$PREFIX/share/lintian/overrides/kvcached-mooncake-compat"
}

# For tests that work in a copy of the cached Debian 12 root (packaging/install,
# quickstart/fresh_root): re-runs the calling script (with its arguments) in a
# private mount namespace, so its mounts vanish with it whatever happens, then
# sets CACHE (KVCACHED_TEST_CACHE, default /var/cache/kvcached-test, or
# BUILD_DIR/packaging/cache where that is not writable) and CACHED_ROOT
# (tests/packaging/debian_root.sh: made once with debootstrap), and takes
# CACHE's install lock: the apt caches there are shared.
#   in_cached_root_namespace "$@"
in_cached_root_namespace() {
  if [[ -z ${KVCACHED_IN_NAMESPACE:-} ]]; then
    if unshare --mount --propagation private true 2>/dev/null; then
      exec unshare --mount --propagation private env KVCACHED_IN_NAMESPACE=1 bash "$0" "$@"
    fi
    # In a bare chroot (a fresh root made by hand) / is no mount point, so
    # neither unshare nor systemd-nspawn can make it private. Inside the new
    # namespace, / is bound onto a directory of its own and the script
    # chroots there: the same tree, now with a mount at its root.
    # KVCACHED_BARE_CHROOT=1 tells the script where it runs.
    local top=/tmp/kvcached-root-bind
    mkdir -p "$top"
    exec unshare --mount --propagation unchanged env KVCACHED_IN_NAMESPACE=1 \
      KVCACHED_BARE_CHROOT=1 bash -c \
      'top=$0 script=$1; shift; mount --rbind / "$top" && mount --make-rprivate "$top" &&
       exec chroot "$top" bash "$script" "$@"' "$top" "$(readlink -f "$0")" "$@"
  fi
  CACHE=${KVCACHED_TEST_CACHE:-/var/cache/kvcached-test}
  if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w $CACHE ]]; then
    CACHE=$BUILD_DIR/packaging/cache
  fi
  local rc=0
  CACHED_ROOT=$("$(dirname "${BASH_SOURCE[0]}")/debian_root.sh" "$CACHE") || rc=$?
  [[ $rc == 0 ]] ||
    skip "no Debian 12 root: debootstrap from deb.debian.org failed (exit $rc; see $CACHE/debootstrap.log)"
  exec 8>"$CACHE/install.lock"
  flock 8
}
