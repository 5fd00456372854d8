# SPDX-License-Identifier: MIT
# install.cmake — run by `cmake --install` (install(CODE) in CMakeLists.txt) to write the files that
# name installed paths: jrpc.pc, jrpc-upstream.pc, jrpcd.ini and jrpcd.service. They are made here,
# not at configure time, so that they name the prefix given to `cmake --install --prefix P` (or
# `make install PREFIX=P`), whatever prefix the build was configured with. DESTDIR is not part of
# the paths they name (file(INSTALL) adds it when writing).
#
# Set by the caller: JRPC_SOURCE_DIR, JRPC_BINARY_DIR, JRPC_VERSION, JRPC_LIBDIR, JRPC_INCLUDEDIR,
# JRPC_BINDIR, JRPC_SYSCONFDIR, JRPC_STATEDIR, JRPC_UNITDIR (relative to the prefix or absolute).

# A directory relative to the install prefix, made absolute the way GNUInstallDirs does: with
# prefix /usr, etc and var are /etc and /var.
function(jrpc_full_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND dir MATCHES "^(etc|var)(/|$)")
    set(${out} "/${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

jrpc_full_dir(libdir "${JRPC_LIBDIR}")
jrpc_full_dir(includedir "${JRPC_INCLUDEDIR}")
jrpc_full_dir(bindir "${JRPC_BINDIR}")
jrpc_full_dir(sysconfdir "${JRPC_SYSCONFDIR}")
jrpc_full_dir(unitdir "${JRPC_UNITDIR}")
set(moduledir "${libdir}/jrpc/modules")
set(gen "${JRPC_BINARY_DIR}/install-gen")
file(MAKE_DIRECTORY "${gen}")

# pkg-config files: @prefix@, @pc_libdir@, @pc_includedir@ are this install's directories, the last two
# written as ${prefix}/… when under the prefix, so that `pkg-config --define-prefix` can move them.
set(prefix "${CMAKE_INSTALL_PREFIX}")
foreach(var libdir includedir)
  string(FIND "${${var}}" "${prefix}/" at)
  if(at EQUAL 0)
    string(LENGTH "${prefix}" n)
    string(SUBSTRING "${${var}}" ${n} -1 rest)
    set(pc_${var} "\${prefix}${rest}")
  else()
    set(pc_${var} "${${var}}")
  endif()
endforeach()
set(PROJECT_VERSION "${JRPC_VERSION}")
foreach(pc jrpc jrpc-upstream)
  configure_file("${JRPC_SOURCE_DIR}/${pc}.pc.in" "${gen}/${pc}.pc" @ONLY)
endforeach()
file(INSTALL "${gen}/jrpc.pc" "${gen}/jrpc-upstream.pc" DESTINATION "${libdir}/pkgconfig")

# The example config: the repository's jrpcd.ini with its module paths pointing at the installed
# modules and the ledger's database in the service's state directory. An operator's edited copy
# is kept; the new one goes beside it as jrpcd.ini.default.
file(READ "${JRPC_SOURCE_DIR}/jrpcd.ini" ini)
string(REPLACE "path = build/modules/" "path = ${moduledir}/" ini "${ini}")
string(REPLACE "the configuration `make run` starts jrpcd with" "an example configuration" ini "${ini}")
string(REPLACE "args = run/ledger.db" "args = ${JRPC_STATEDIR}/ledger.db" ini "${ini}")
set(ini "; Installed by `cmake --install`: modules from ${moduledir}, the ledger's database in
; ${JRPC_STATEDIR} (jrpcd.service's StateDirectory). jrpcd.ini(5) describes every key.
${ini}")
set(ini_dest "${sysconfdir}/jrpc")
set(ini_name jrpcd.ini)
if(EXISTS "$ENV{DESTDIR}${ini_dest}/jrpcd.ini")
  file(READ "$ENV{DESTDIR}${ini_dest}/jrpcd.ini" old)
  if(NOT old STREQUAL ini)
    message(STATUS "Keeping the edited $ENV{DESTDIR}${ini_dest}/jrpcd.ini; new one: jrpcd.ini.default")
    set(ini_name jrpcd.ini.default)
  endif()
endif()
file(WRITE "${gen}/${ini_name}" "${ini}")
file(INSTALL "${gen}/${ini_name}" DESTINATION "${ini_dest}")

# The systemd unit, starting this install's jrpcd with this install's config.
set(BINDIR "${bindir}")
set(SYSCONFDIR "${sysconfdir}")
configure_file("${JRPC_SOURCE_DIR}/dist/jrpcd.service.in" "${gen}/jrpcd.service" @ONLY)
file(INSTALL "${gen}/jrpcd.service" DESTINATION "${unitdir}")
