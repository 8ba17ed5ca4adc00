# Cross-compile for 64-bit Windows with Debian's mingw-w64 (package
# mingw-w64), using the win32 thread model so that nothing needs
# libwinpthread.
#
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake
#
# Libraries are searched only in the mingw-w64 system folder and in the
# prefix that `scripts/deps.sh --target windows` fills (default
# .deps/windows; AGENT_DEPS_PREFIX names another). Both must be listed in
# CMAKE_FIND_ROOT_PATH: find_library() under ONLY mode rejects the
# absolute paths that pkg-config returns unless they lie below a root.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(AGENT_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${AGENT_MINGW_TRIPLE}-gcc-win32)
set(CMAKE_CXX_COMPILER ${AGENT_MINGW_TRIPLE}-g++-win32)
set(CMAKE_RC_COMPILER ${AGENT_MINGW_TRIPLE}-windres)
set(CMAKE_AR /usr/bin/${AGENT_MINGW_TRIPLE}-ar)
set(CMAKE_RANLIB /usr/bin/${AGENT_MINGW_TRIPLE}-ranlib)
set(CMAKE_STRIP /usr/bin/${AGENT_MINGW_TRIPLE}-strip)
set(CMAKE_OBJDUMP /usr/bin/${AGENT_MINGW_TRIPLE}-objdump)

# Symbolic links are resolved, as scripts/deps.sh writes the prefix into
# the pkg-config files without them.
if(AGENT_DEPS_PREFIX)
  set(_agent_windows_deps "${AGENT_DEPS_PREFIX}")
elseif(DEFINED ENV{AGENT_DEPS_PREFIX})
  set(_agent_windows_deps "$ENV{AGENT_DEPS_PREFIX}")
else()
  set(_agent_windows_deps "${CMAKE_CURRENT_LIST_DIR}/../.deps/windows")
endif()
get_filename_component(_agent_windows_deps "${_agent_windows_deps}" REALPATH)

set(CMAKE_FIND_ROOT_PATH /usr/${AGENT_MINGW_TRIPLE} "${_agent_windows_deps}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must see only the Windows prefix, never the host's .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "${_agent_windows_deps}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Run test programs and try_run() checks under wine.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(AGENT_WINE wine)
  if(AGENT_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${AGENT_WINE}")
  endif()
endif()
