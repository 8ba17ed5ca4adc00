# Installation layout, man pages and the Debian package.
#
# Included from the top-level CMakeLists.txt after the targets exist.
# `cmake --install` puts everything where the systemd units expect it, and
# `cpack -G DEB` in the build folder writes
# rossum-sftp-agent_<version>_<arch>.deb. packaging/deb-test.sh installs and
# purges that package as a test.

# systemd units and Debian packages exist only on Linux; the Windows build
# will get its own installer.
if(WIN32)
  return()
endif()

# The units start /usr/bin/rossum-sftp-agent and read
# /etc/rossum-sftp-agent/agent.conf, so the default prefix is /usr, as for a
# Debian package, instead of CMake's /usr/local.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX "/usr" CACHE PATH "Installation prefix" FORCE)
endif()
include(GNUInstallDirs)

# Debian 12 keeps package units in /lib/systemd/system (trixie moves them to
# /usr/lib/systemd/system).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(AGENT_DEFAULT_UNIT_DIR "/lib/systemd/system")
else()
  set(AGENT_DEFAULT_UNIT_DIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  message(WARNING
    "CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}, but the systemd units "
    "start /usr/bin/rossum-sftp-agent and read "
    "/etc/rossum-sftp-agent/agent.conf; configure with "
    "-DCMAKE_INSTALL_PREFIX=/usr to install or package them")
endif()
set(AGENT_SYSTEMD_UNIT_DIR "${AGENT_DEFAULT_UNIT_DIR}" CACHE PATH
    "Folder for the systemd unit files")
set(AGENT_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/rossum-sftp-agent")
set(AGENT_DOC_DIR "${CMAKE_INSTALL_DATADIR}/doc/rossum-sftp-agent")

install(FILES packaging/systemd/rossum-sftp-agent.service
              packaging/systemd/rossum-sftp-agent-sync.service
              packaging/systemd/rossum-sftp-agent-sync.timer
        DESTINATION "${AGENT_SYSTEMD_UNIT_DIR}")

# The installed config is the reference config with `host` commented out:
# until an administrator sets the server, every command stops with
# "[server] host is missing" (exit code 2) instead of connecting to the
# example host, and the service does not restart on that exit code.
set(AGENT_EXAMPLE_CONFIG "${CMAKE_SOURCE_DIR}/conf/agent.conf.example")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${AGENT_EXAMPLE_CONFIG}")
# packaging/deb-test.sh checks that no host line is left.
file(READ "${AGENT_EXAMPLE_CONFIG}" agent_config_text)
string(REGEX REPLACE "\n[ \t]*host[ \t]*=[ \t]*([^\n]*)"
       "\n# The packaged config leaves host unset, so that the agent does not\n# start before it is configured. Set it to your SFTP server.\n#host = \\1"
       agent_config_text "${agent_config_text}")
file(WRITE "${CMAKE_BINARY_DIR}/packaging/agent.conf" "${agent_config_text}")
install(FILES "${CMAKE_BINARY_DIR}/packaging/agent.conf"
        DESTINATION "${AGENT_CONFIG_DIR}"
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

# Written by another part of the project; installed once it exists (run
# cmake again after adding it).
set(AGENT_LOGROTATE "${CMAKE_SOURCE_DIR}/packaging/logrotate/rossum-sftp-agent")
if(EXISTS "${AGENT_LOGROTATE}")
  install(FILES "${AGENT_LOGROTATE}"
          DESTINATION "${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d")
endif()

install(FILES README.md conf/agent.conf.example packaging/deb/copyright
        DESTINATION "${AGENT_DOC_DIR}")
install(FILES packaging/deb/lintian-overrides
        DESTINATION "${CMAKE_INSTALL_DATADIR}/lintian/overrides"
        RENAME rossum-sftp-agent)

# Man pages, from scdoc sources. Without scdoc the build skips them, and
# packaging/deb-test.sh fails on a package without them.
find_program(SCDOC_EXECUTABLE scdoc)
find_program(GZIP_EXECUTABLE gzip REQUIRED)
if(SCDOC_EXECUTABLE)
  set(agent_man_pages)
  foreach(page rossum-sftp-agent.1 rossum-sftp-agent.conf.5)
    set(source "${CMAKE_SOURCE_DIR}/packaging/man/${page}.scd")
    set(output "${CMAKE_BINARY_DIR}/man/${page}")
    string(REGEX MATCH "[0-9]$" section "${page}")
    # Debian installs man pages compressed with gzip -9n (no name or time
    # in the header, so the build is reproducible).
    add_custom_command(
      OUTPUT "${output}" "${output}.gz"
      COMMAND sh -c "\"$1\" < \"$2\" > \"$3\"" sh
              "${SCDOC_EXECUTABLE}" "${source}" "${output}"
      COMMAND "${GZIP_EXECUTABLE}" -9nkf "${output}"
      DEPENDS "${source}"
      COMMENT "Generating man page ${page}"
      VERBATIM)
    install(FILES "${output}.gz"
            DESTINATION "${CMAKE_INSTALL_MANDIR}/man${section}")
    list(APPEND agent_man_pages "${output}" "${output}.gz")
  endforeach()
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/man")
  add_custom_target(man ALL DEPENDS ${agent_man_pages})
else()
  message(WARNING "scdoc not found: the man pages are not built or "
                  "installed; install it with 'apt-get install scdoc'")
endif()

# Debian package. dpkg-shlibdeps computes the library dependencies from the
# binary; libssh2 is linked statically from scripts/deps.sh's prefix, so it
# is not among them. adduser is needed by postinst.
set(AGENT_DEB_MAINTAINER "rossum-sftp-agent maintainers <maintainers@invalid>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "rossum-sftp-agent")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${AGENT_DEB_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Collect Rossum export files from an SFTP server")
# CPack puts the summary first and indents these lines as Debian requires.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "rossum-sftp-agent polls an SFTP server for the XML, CSV and JSON
files that Rossum exports, verifies the server's host key, waits until
each file has stopped changing, and writes one JSON file per export into
a local folder. An LMDB manifest records every step, so that a restart
resumes where it stopped. Delivered files are moved into an archive
folder.

The package installs a systemd service, and a timer as an alternative.
Neither is enabled: configure /etc/rossum-sftp-agent/agent.conf first.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
if(EXISTS "${AGENT_LOGROTATE}")
  set(CPACK_DEBIAN_PACKAGE_SUGGESTS "logrotate")
endif()

# Debian requires a changelog even for a package built outside Debian. Its
# date honours SOURCE_DATE_EPOCH, so a build can be made reproducible.
string(TIMESTAMP AGENT_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(packaging/deb/changelog.in
               "${CMAKE_BINARY_DIR}/packaging/changelog" @ONLY)
add_custom_command(
  OUTPUT "${CMAKE_BINARY_DIR}/packaging/changelog.gz"
  COMMAND "${GZIP_EXECUTABLE}" -9nkf "${CMAKE_BINARY_DIR}/packaging/changelog"
  DEPENDS "${CMAKE_BINARY_DIR}/packaging/changelog"
  VERBATIM)
add_custom_target(deb-changelog ALL
                  DEPENDS "${CMAKE_BINARY_DIR}/packaging/changelog.gz")
install(FILES "${CMAKE_BINARY_DIR}/packaging/changelog.gz"
        DESTINATION "${AGENT_DOC_DIR}")

set(agent_conffiles "${AGENT_CONFIG_DIR}/agent.conf\n")
if(EXISTS "${AGENT_LOGROTATE}")
  string(APPEND agent_conffiles
         "${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d/rossum-sftp-agent\n")
endif()
file(WRITE "${CMAKE_BINARY_DIR}/packaging/conffiles" "${agent_conffiles}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_BINARY_DIR}/packaging/conffiles"
    "${CMAKE_SOURCE_DIR}/packaging/deb/postinst"
    "${CMAKE_SOURCE_DIR}/packaging/deb/prerm"
    "${CMAKE_SOURCE_DIR}/packaging/deb/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# The config and unit folders above are absolute and follow the prefix, so
# a package from another prefix would put them in the wrong place.
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(agent_cpack_guard "${CMAKE_BINARY_DIR}/packaging/cpack-prefix-guard.cmake")
  file(WRITE "${agent_cpack_guard}"
       "message(FATAL_ERROR \"This build folder uses CMAKE_INSTALL_PREFIX="
       "${CMAKE_INSTALL_PREFIX}; configure it with -DCMAKE_INSTALL_PREFIX=/usr "
       "before running cpack\")\n")
  set(CPACK_PROJECT_CONFIG_FILE "${agent_cpack_guard}")
endif()

include(CPack)
