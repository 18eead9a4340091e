# Runs at build time (not configure time) so the git revision is always the
# one the binary was built from. Writes OUT only when its content changes.
execute_process(
  COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
  OUTPUT_VARIABLE KVCACHED_REVISION
  OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_QUIET
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR KVCACHED_REVISION STREQUAL "")
  set(KVCACHED_REVISION "unknown")
endif()
configure_file("${SRC}/cmake/build_info.cpp.in" "${OUT}" @ONLY)
