# Install rules and CPack configuration: `cpack` in a build tree makes
# kvcached_<version>_<arch>.deb and kvcached-<version>.<arch>.rpm, plus
# kvcached-dev (where the client library's shared target exists) and
# python3-kvcached (where python/kvcached exists), from one configure. What
# goes where, and why, is in docs/packaging.md. Included once, at the end of
# the top-level CMakeLists.txt, after every target.
#
# Packages must be laid out for /usr (/etc for the config files). When no
# prefix was given, the prefix therefore defaults to /usr here, so that any
# build tree, the test build included, can be packaged without a second
# compile; pass -DCMAKE_INSTALL_PREFIX=/usr/local (or any other) for a local
# `cmake --install`. cpack refuses a tree whose prefix is not /usr.

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix (packages need /usr)" FORCE)
endif()
# Again, now that the prefix is final: /usr gives /etc and the multiarch
# library directory.
include(GNUInstallDirs)

set(KVCACHED_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" CACHE PATH
    "Where the systemd units are installed")
set(KVCACHED_PYTHON_INSTALL_DIR "${CMAKE_INSTALL_PREFIX}/lib/python3/dist-packages" CACHE PATH
    "Where the kvcached Python package is installed (Debian's python3 reads /usr/lib/python3/dist-packages)")
set(KVCACHED_CONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/kvcached")

set(_pkg ${CMAKE_SOURCE_DIR}/packaging)
set(_gen ${CMAKE_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${_gen})

# --- systemd units: the binary's and the config directory's real paths ---
set(KVCACHED_BINARY "${CMAKE_INSTALL_FULL_BINDIR}/kvcached")
set(KVCACHED_UNITS kvcached-master.service kvcached-meta.service kvcached-store@.service)
foreach(_unit ${KVCACHED_UNITS})
  configure_file(${_pkg}/systemd/${_unit}.in ${_gen}/${_unit} @ONLY)
  install(FILES ${_gen}/${_unit} DESTINATION ${KVCACHED_SYSTEMD_UNITDIR} COMPONENT server)
endforeach()

# --- configuration: conffiles (dpkg keeps an edited one on upgrade) ---
set(KVCACHED_CONFFILES
    ${KVCACHED_CONFDIR}/master.json ${KVCACHED_CONFDIR}/meta.json
    ${KVCACHED_CONFDIR}/store-default.json ${CMAKE_INSTALL_FULL_SYSCONFDIR}/default/kvcached)
install(FILES ${_pkg}/config/master.json ${_pkg}/config/meta.json ${_pkg}/config/store-default.json
        DESTINATION ${KVCACHED_CONFDIR} COMPONENT server)
install(FILES ${_pkg}/config/default DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/default
        RENAME kvcached COMPONENT server)

# --- man pages (committed roff, gzipped as Debian policy wants) ---
# mooncake_master(1) is the kvcached-mooncake-compat package's (below).
find_program(KVCACHED_GZIP gzip REQUIRED)
set(KVCACHED_MAN_PAGES kvcached.1 kvcached.json.5)
set(KVCACHED_COMPAT_MAN_PAGES mooncake_master.1)
set(_man_gz)
foreach(_page ${KVCACHED_MAN_PAGES} ${KVCACHED_COMPAT_MAN_PAGES})
  string(REGEX MATCH "[0-9]$" _section ${_page})
  add_custom_command(OUTPUT ${_gen}/${_page}.gz
                     COMMAND ${KVCACHED_GZIP} -9nc ${CMAKE_SOURCE_DIR}/man/${_page} > ${_gen}/${_page}.gz
                     DEPENDS ${CMAKE_SOURCE_DIR}/man/${_page}
                     COMMENT "Compressing man page ${_page}")
  list(APPEND _man_gz ${_gen}/${_page}.gz)
endforeach()
foreach(_page ${KVCACHED_MAN_PAGES})
  string(REGEX MATCH "[0-9]$" _section ${_page})
  install(FILES ${_gen}/${_page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section}
          COMPONENT server)
endforeach()

# --- documentation: copyright and changelog as Debian expects them ---
add_custom_command(OUTPUT ${_gen}/changelog.Debian.gz
                   COMMAND ${KVCACHED_GZIP} -9nc ${_pkg}/changelog > ${_gen}/changelog.Debian.gz
                   DEPENDS ${_pkg}/changelog
                   COMMENT "Compressing the Debian changelog")
add_custom_target(kvcached_package_files ALL DEPENDS ${_man_gz} ${_gen}/changelog.Debian.gz)
install(FILES ${_pkg}/copyright ${_gen}/changelog.Debian.gz ${CMAKE_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT server)
install(FILES ${_pkg}/lintian/kvcached DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
        COMPONENT server)
file(GLOB _docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT server)

# --- the client library (C ABI), its headers, the Python package ---
# The library stays in the kvcached package (docs/packaging.md says why);
# the headers and the Python package have packages of their own.
set(KVCACHED_PACKAGE_NAME_DEV kvcached-dev)
set(KVCACHED_PACKAGE_NAME_PYTHON python3-kvcached)
set(KVCACHED_PACKAGE_DEV OFF)
if(TARGET kvcached_shared)
  set(KVCACHED_PACKAGE_DEV ON)
  install(TARGETS kvcached_shared
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT server NAMELINK_SKIP)
  install(TARGETS kvcached_shared
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev NAMELINK_ONLY)
  # Only the C ABI's header: the shared library exports the kvcached_* C
  # functions alone (src/capi/kvcached.map), so the C++ client headers
  # (client.h, status.h, error_code.h) would promise symbols it lacks.
  install(FILES ${CMAKE_SOURCE_DIR}/include/kvcached/kvcached.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kvcached COMPONENT dev)
endif()
set(KVCACHED_PACKAGE_PYTHON OFF)
if(EXISTS ${CMAKE_SOURCE_DIR}/python/kvcached)
  set(KVCACHED_PACKAGE_PYTHON ON)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/python/kvcached DESTINATION ${KVCACHED_PYTHON_INSTALL_DIR}
          COMPONENT python
          PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE PATTERN "*.so" EXCLUDE)
endif()

# --- kvcached-mooncake-compat: Mooncake's names for kvcached (opt-in) ---
# /usr/bin/mooncake_master (a link to kvcached, which runs the master under
# that name), a .pth that puts the shim's `mooncake` package (in the Python
# package) in front of sys.path of every process, and mooncake_master(1).
# Opt-in: it shadows a real Mooncake, which is why it is a package of its
# own, and why its files are left out of a plain `cmake --install`
# (`--component compat` installs them).
set(KVCACHED_PACKAGE_NAME_COMPAT kvcached-mooncake-compat)
set(KVCACHED_PACKAGE_COMPAT ${KVCACHED_PACKAGE_PYTHON})
if(KVCACHED_PACKAGE_COMPAT)
  file(CREATE_LINK kvcached ${_gen}/mooncake_master SYMBOLIC)
  install(FILES ${_gen}/mooncake_master DESTINATION ${CMAKE_INSTALL_BINDIR}
          COMPONENT compat EXCLUDE_FROM_ALL)
  # The line `python3 -m kvcached.shim install` writes (shim.py's _pth_line),
  # after a first line naming the package, which shim.py recognises.
  set(KVCACHED_SHIM_DIR ${KVCACHED_PYTHON_INSTALL_DIR}/kvcached/_shim)
  configure_file(${_pkg}/compat/kvcached-mooncake-shim.pth.in ${_gen}/kvcached-mooncake-shim.pth
                 @ONLY)
  install(FILES ${_gen}/kvcached-mooncake-shim.pth DESTINATION ${KVCACHED_PYTHON_INSTALL_DIR}
          COMPONENT compat EXCLUDE_FROM_ALL)
  foreach(_page ${KVCACHED_COMPAT_MAN_PAGES})
    string(REGEX MATCH "[0-9]$" _section ${_page})
    install(FILES ${_gen}/${_page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section}
            COMPONENT compat EXCLUDE_FROM_ALL)
  endforeach()
endif()

# Every Debian package carries its own copyright file and changelog.
foreach(_c dev python compat)
  string(TOUPPER ${_c} _C)
  if(KVCACHED_PACKAGE_${_C})
    set(_exclude)
    if(_c STREQUAL compat)
      set(_exclude EXCLUDE_FROM_ALL)  # opt-in, as its other files
    endif()
    install(FILES ${_pkg}/copyright ${_gen}/changelog.Debian.gz
            DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${KVCACHED_PACKAGE_NAME_${_C}}
            COMPONENT ${_c} ${_exclude})
    install(FILES ${_pkg}/lintian/${KVCACHED_PACKAGE_NAME_${_C}}
            DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides
            COMPONENT ${_c} ${_exclude})
  endif()
endforeach()

# --- CPack ---
set(CPACK_PACKAGE_NAME kvcached)
set(CPACK_PACKAGE_VENDOR "kvcached")
set(CPACK_PACKAGE_CONTACT "kvcached maintainers <maintainers@users.noreply.b-seed-d0e13840.example>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# Descriptions per package; the first line is the synopsis. The common
# summary stays empty: CPackDeb would put it (by default the project's
# DESCRIPTION) in front of both.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "")
set(_server_summary "distributed KV-cache pool for LLM inference")
set(_server_text
    "kvcached pools DRAM from many processes on many hosts into one cache for\n"
    "the KV-cache pages of LLM inference servers, which read pages back\n"
    "instead of recomputing the prefill. A master places objects and keeps the\n"
    "index, stores contribute memory segments, and clients move the bytes\n"
    "directly over RDMA, TCP or same-host shared memory. It reads Mooncake's\n"
    "MOONCAKE_* settings and speaks the metadata protocol of Mooncake's\n"
    "http_metadata_server, so it can stand in for Mooncake Store.\n"
    "\n"
    "This package has the kvcached binary (master, meta, store and bench),\n"
    "systemd units for the master, the metadata service and store instances,\n"
    "their default configuration, and the client library libkvcached.so.0\n"
    "(C ABI).")
set(_dev_summary "distributed KV-cache pool for LLM inference - development files")
set(_dev_text
    "kvcached pools DRAM from many processes on many hosts into one cache for\n"
    "the KV-cache pages of LLM inference servers.\n"
    "\n"
    "This package has the C header of the kvcached client library\n"
    "(kvcached/kvcached.h) and the libkvcached.so link, for programs that use\n"
    "the pool through its C ABI.")
set(_python_summary "distributed KV-cache pool for LLM inference - Python 3 client")
set(_python_text
    "kvcached pools DRAM from many processes on many hosts into one cache for\n"
    "the KV-cache pages of LLM inference servers.\n"
    "\n"
    "This package has the Python 3 module kvcached: a client of the pool on\n"
    "the C library (ctypes), a class compatible with Mooncake's\n"
    "MooncakeDistributedStore, and a storage backend for SGLang's HiCache.")
set(_compat_summary "distributed KV-cache pool for LLM inference - Mooncake names")
set(_compat_text
    "kvcached pools DRAM from many processes on many hosts into one cache for\n"
    "the KV-cache pages of LLM inference servers.\n"
    "\n"
    "This package makes Mooncake's names kvcached's: the mooncake_master\n"
    "command runs the kvcached master, with Mooncake's flags, and the Python\n"
    "package mooncake (mooncake.store, mooncake.http_metadata_server) is\n"
    "kvcached's in every python3 process, so deployments that follow\n"
    "Mooncake's recipes run unchanged. It is opt-in, and it conflicts with a\n"
    "real Mooncake installation.")
foreach(_c SERVER DEV PYTHON COMPAT)
  string(TOLOWER ${_c} _l)
  string(REPLACE ";" "" _text "${_${_l}_text}")
  set(CPACK_DEBIAN_${_c}_DESCRIPTION "${_${_l}_summary}\n${_text}")
  set(CPACK_RPM_${_c}_PACKAGE_SUMMARY "${_${_l}_summary}")
  set(CPACK_RPM_${_c}_PACKAGE_DESCRIPTION "${_text}")
endforeach()
set(CPACK_GENERATOR DEB RPM)
set(CPACK_SET_DESTDIR ON)  # /etc lies outside the prefix
set(CPACK_PACKAGE_RELOCATABLE OFF)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CHECKSUM SHA256)
set(CPACK_SOURCE_GENERATOR "")

set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_RPM_COMPONENT_INSTALL ON)
# The top-level install(TARGETS kvcached) has no component: it belongs with
# the server.
set(CPACK_COMPONENTS_ALL Unspecified server)
if(KVCACHED_PACKAGE_DEV)
  list(APPEND CPACK_COMPONENTS_ALL dev)
endif()
if(KVCACHED_PACKAGE_PYTHON)
  list(APPEND CPACK_COMPONENTS_ALL python)
endif()
if(KVCACHED_PACKAGE_COMPAT)
  list(APPEND CPACK_COMPONENTS_ALL compat)
endif()

set(_version_release "${PROJECT_VERSION}-1")

# Debian
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME kvcached)
# adduser: postinst; procps: /bin/kill in the units' ExecReload=.
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser, procps")
# The RDMA transport needs a verbs provider for the NIC at run time.
set(CPACK_DEBIAN_SERVER_PACKAGE_RECOMMENDS "ibverbs-providers")
list(JOIN KVCACHED_CONFFILES "\n" _conffiles)
file(WRITE ${_gen}/conffiles "${_conffiles}\n")
# triggers: ldconfig runs once dpkg is done (libkvcached.so.0).
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${_gen}/conffiles ${_pkg}/deb/triggers ${_pkg}/deb/postinst ${_pkg}/deb/prerm
    ${_pkg}/deb/postrm)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_DEV})
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "kvcached (= ${_version_release})")
set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_PYTHON})
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3:any, kvcached (>= ${_version_release})")
# py3compile on install, py3clean before removal, as dh_python3 would.
set(CPACK_DEBIAN_PYTHON_PACKAGE_CONTROL_EXTRA
    ${_pkg}/deb/python3-kvcached/postinst ${_pkg}/deb/python3-kvcached/prerm)
set(_compat_conflicts mooncake mooncake-transfer-engine python3-mooncake)
list(JOIN _compat_conflicts ", " _compat_conflicts)
set(CPACK_DEBIAN_COMPAT_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_COMPAT})
# python3:any for the .pth in dist-packages (lintian asks for it directly).
set(CPACK_DEBIAN_COMPAT_PACKAGE_DEPENDS
    "python3:any, kvcached (= ${_version_release}), python3-kvcached (= ${_version_release})")
set(CPACK_DEBIAN_COMPAT_PACKAGE_CONFLICTS "${_compat_conflicts}")
# A link, a .pth and documentation: the same on every architecture (the
# link's target comes from kvcached of the host's).
set(CPACK_DEBIAN_COMPAT_PACKAGE_ARCHITECTURE all)

# RPM (built on Debian with the rpm package's rpmbuild)
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_LICENSE "LicenseRef-kvcached-unlicensed")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_SERVER_PACKAGE_NAME kvcached)
set(CPACK_RPM_SERVER_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_SERVER_PACKAGE_REQUIRES_PRE "shadow-utils")
set(CPACK_RPM_DEV_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_DEV})
set(CPACK_RPM_DEV_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_DEV_PACKAGE_REQUIRES "kvcached = ${_version_release}")
set(CPACK_RPM_PYTHON_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_PYTHON})
set(CPACK_RPM_PYTHON_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PYTHON_PACKAGE_ARCHITECTURE noarch)
set(CPACK_RPM_PYTHON_PACKAGE_REQUIRES "python3, kvcached >= ${_version_release}")
set(CPACK_RPM_PYTHON_PRE_UNINSTALL_SCRIPT_FILE ${_pkg}/rpm/python-preun)
set(CPACK_RPM_COMPAT_PACKAGE_NAME ${KVCACHED_PACKAGE_NAME_COMPAT})
set(CPACK_RPM_COMPAT_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_COMPAT_PACKAGE_ARCHITECTURE noarch)
set(CPACK_RPM_COMPAT_PACKAGE_REQUIRES
    "kvcached = ${_version_release}, python3-kvcached = ${_version_release}")
set(CPACK_RPM_COMPAT_PACKAGE_CONFLICTS "${_compat_conflicts}")
set(CPACK_RPM_CHANGELOG_FILE ${_pkg}/rpm/changelog)
# No /usr/lib/.build-id links: the .deb has none either.
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none")
set(CPACK_RPM_SERVER_PRE_INSTALL_SCRIPT_FILE ${_pkg}/rpm/pre)
set(CPACK_RPM_SERVER_POST_INSTALL_SCRIPT_FILE ${_pkg}/rpm/post)
set(CPACK_RPM_SERVER_PRE_UNINSTALL_SCRIPT_FILE ${_pkg}/rpm/preun)
set(CPACK_RPM_SERVER_POST_UNINSTALL_SCRIPT_FILE ${_pkg}/rpm/postun)
set(_rpm_conf)
foreach(_f ${KVCACHED_CONFFILES})
  list(APPEND _rpm_conf "%config(noreplace) ${_f}")
endforeach()
set(CPACK_RPM_SERVER_USER_FILELIST ${_rpm_conf})
# Directories other packages (filesystem, systemd, python3) own.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /etc/default /usr/lib/systemd /usr/lib/systemd/system /usr/lib/python3
    /usr/lib/python3/dist-packages /usr/share/man /usr/share/man/man1 /usr/share/man/man5
    /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})

# What the packaging tests (tests/packaging/) expect of this tree.
foreach(_v KVCACHED_PACKAGE_DEV KVCACHED_PACKAGE_PYTHON KVCACHED_PACKAGE_COMPAT KVCACHED_SANITIZE)
  if(${_v})
    set(_${_v} 1)
  else()
    set(_${_v} 0)
  endif()
endforeach()
set(_sanitize ${_KVCACHED_SANITIZE})
file(WRITE ${_gen}/layout.env
     "PREFIX='${CMAKE_INSTALL_PREFIX}'\n"
     "VERSION='${PROJECT_VERSION}'\n"
     "DEB_VERSION='${_version_release}'\n"
     "BINDIR='${CMAKE_INSTALL_FULL_BINDIR}'\n"
     "LIBDIR='${CMAKE_INSTALL_FULL_LIBDIR}'\n"
     "INCLUDEDIR='${CMAKE_INSTALL_FULL_INCLUDEDIR}'\n"
     "MANDIR='${CMAKE_INSTALL_FULL_MANDIR}'\n"
     "DOCDIR='${CMAKE_INSTALL_FULL_DOCDIR}'\n"
     "CONFDIR='${KVCACHED_CONFDIR}'\n"
     "UNITDIR='${KVCACHED_SYSTEMD_UNITDIR}'\n"
     "PYTHONDIR='${KVCACHED_PYTHON_INSTALL_DIR}'\n"
     "CONFFILES='${KVCACHED_CONFFILES}'\n"
     "UNITS='${KVCACHED_UNITS}'\n"
     "MAN_PAGES='${KVCACHED_MAN_PAGES}'\n"
     "COMPAT_MAN_PAGES='${KVCACHED_COMPAT_MAN_PAGES}'\n"
     "HAS_DEV=${_KVCACHED_PACKAGE_DEV}\n"
     "HAS_PYTHON=${_KVCACHED_PACKAGE_PYTHON}\n"
     "HAS_COMPAT=${_KVCACHED_PACKAGE_COMPAT}\n"
     "SANITIZE=${_sanitize}\n")

# Checked when cpack runs, not at configure time: a tree with another
# prefix still builds and installs. Release packages come from a tree
# without the test-only fault hooks (-DKVCACHED_BUILD_TESTS=OFF); the
# packaging tests package the test tree on purpose and say so with
# `cpack -D KVCACHED_PACKAGE_TEST_BUILD=ON`.
if(KVCACHED_FAULT_HOOKS)
  set(_fault_hooks ON)
else()
  set(_fault_hooks OFF)
endif()
set(CPACK_PROJECT_CONFIG_FILE ${_gen}/CPackProjectConfig.cmake)
file(WRITE ${CPACK_PROJECT_CONFIG_FILE}
     "cmake_policy(SET CMP0012 NEW)\n"
     "set(_kv_prefix \"${CMAKE_INSTALL_PREFIX}\")\n"
     "set(_kv_sanitize ${_sanitize})\n"
     "set(_kv_fault_hooks ${_fault_hooks})\n"
     "if(NOT _kv_prefix STREQUAL \"/usr\")\n"
     "  message(FATAL_ERROR \"packages need a tree configured with -DCMAKE_INSTALL_PREFIX=/usr \"\n"
     "                      \"(this one has \${_kv_prefix})\")\n"
     "endif()\n"
     "if(_kv_sanitize)\n"
     "  message(FATAL_ERROR \"this tree is built with sanitizers (KVCACHED_SANITIZE=ON): no packages\")\n"
     "endif()\n"
     "if(_kv_fault_hooks AND NOT KVCACHED_PACKAGE_TEST_BUILD)\n"
     "  message(FATAL_ERROR \"this tree compiles the test-only fault hooks (KVCACHED_FAULT_HOOKS=ON): \"\n"
     "                      \"configure the release build with -DKVCACHED_BUILD_TESTS=OFF \"\n"
     "                      \"(the packaging tests pass -D KVCACHED_PACKAGE_TEST_BUILD=ON)\")\n"
     "endif()\n")

include(CPack)
cpack_add_component_group(server)
cpack_add_component(Unspecified GROUP server)
cpack_add_component(server GROUP server)
if(KVCACHED_PACKAGE_DEV)
  cpack_add_component_group(dev)
  cpack_add_component(dev GROUP dev DEPENDS server)
endif()
if(KVCACHED_PACKAGE_PYTHON)
  cpack_add_component_group(python)
  cpack_add_component(python GROUP python DEPENDS server)
endif()
if(KVCACHED_PACKAGE_COMPAT)
  cpack_add_component_group(compat)
  cpack_add_component(compat GROUP compat DEPENDS server python)
endif()
