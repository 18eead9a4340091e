#!/usr/bin/env bash
# packaging/build: cpack makes the .deb and the .rpm from this build tree
# (one configure), into BUILD_DIR/packages. The other packaging tests use
# them.
source "$(dirname "$0")/common.sh"
require_package_tree
require_tools cpack dpkg-deb dpkg-shlibdeps fakeroot rpmbuild

cd "$BUILD_DIR"
rm -rf "$PKG_DIR" _CPack_Packages
mkdir -p "$PKG_DIR"
note "cpack -G DEB;RPM in $BUILD_DIR"
# The test tree may compile the fault hooks; its packages are tested, never shipped.
if ! cpack -G "DEB;RPM" -B "$PKG_DIR" -D KVCACHED_PACKAGE_TEST_BUILD=ON >"$PKG_DIR/cpack.log" 2>&1; then
  cat "$PKG_DIR/cpack.log"
  fail "cpack failed"
fi
grep -E 'CPack: - package: ' "$PKG_DIR/cpack.log" || true
# Warnings from CPack or from dpkg-shlibdeps are defects in the packaging.
if grep -Ei 'warning' "$PKG_DIR/cpack.log"; then
  fail "cpack printed warnings (log: $PKG_DIR/cpack.log)"
fi
find_packages
ls -l "$PKG_DIR"/*.deb "$PKG_DIR"/*.rpm
