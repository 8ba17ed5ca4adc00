# The Windows parts of the build, included by CMakeLists.txt once the
# agentcore library and the executable exist.

target_link_libraries(agentcore PUBLIC ${AGENT_WINDOWS_LIBS})

# src/win/compat_win.h declares the POSIX functions that the core calls
# and mingw-w64 lacks; every C file of the build sees it first.
set(AGENT_COMPAT_HEADER "${CMAKE_SOURCE_DIR}/src/win/compat_win.h")
if(EXISTS "${AGENT_COMPAT_HEADER}")
  target_compile_options(agentcore PUBLIC
    "$<$<COMPILE_LANGUAGE:C>:SHELL:-include ${AGENT_COMPAT_HEADER}>")
endif()

# Event Log message tables: windmc turns each src/win/NAME.mc into NAME.h,
# which the core includes, and NAME.rc with its binary table, which the
# executable carries as a resource.
find_program(AGENT_WINDMC NAMES ${AGENT_MINGW_TRIPLE}-windmc windmc REQUIRED)
set(AGENT_GENERATED_WIN "${CMAKE_BINARY_DIR}/generated/win")
file(MAKE_DIRECTORY "${AGENT_GENERATED_WIN}")
file(GLOB AGENT_MESSAGE_FILES CONFIGURE_DEPENDS src/win/*.mc)
set(AGENT_RESOURCE_FILES "")
foreach(message_file ${AGENT_MESSAGE_FILES})
  get_filename_component(name "${message_file}" NAME_WE)
  add_custom_command(
    OUTPUT "${AGENT_GENERATED_WIN}/${name}.h" "${AGENT_GENERATED_WIN}/${name}.rc"
    COMMAND "${AGENT_WINDMC}" -h "${AGENT_GENERATED_WIN}"
            -r "${AGENT_GENERATED_WIN}" "${message_file}"
    DEPENDS "${message_file}"
    COMMENT "Compiling the message table ${name}.mc")
  target_sources(agentcore PRIVATE "${AGENT_GENERATED_WIN}/${name}.h")
  list(APPEND AGENT_RESOURCE_FILES "${AGENT_GENERATED_WIN}/${name}.rc")
endforeach()
target_include_directories(agentcore PRIVATE "${AGENT_GENERATED_WIN}")

# src/win/*.rc: the application manifest and the version resource, which
# take the version from these definitions.
file(GLOB AGENT_WINDOWS_RC CONFIGURE_DEPENDS src/win/*.rc)
list(APPEND AGENT_RESOURCE_FILES ${AGENT_WINDOWS_RC})
target_sources(rossum-sftp-agent PRIVATE ${AGENT_RESOURCE_FILES})
target_include_directories(rossum-sftp-agent PRIVATE
  "${AGENT_GENERATED_WIN}" "${CMAKE_SOURCE_DIR}/src/win")
# windres hands -D options to the preprocessor through a shell, which
# would drop the quotes of a string value; the backslashes keep them.
target_compile_options(rossum-sftp-agent PRIVATE
  $<$<COMPILE_LANGUAGE:RC>:-DAGENT_VERSION_MAJOR=${PROJECT_VERSION_MAJOR}>
  $<$<COMPILE_LANGUAGE:RC>:-DAGENT_VERSION_MINOR=${PROJECT_VERSION_MINOR}>
  $<$<COMPILE_LANGUAGE:RC>:-DAGENT_VERSION_PATCH=${PROJECT_VERSION_PATCH}>
  "$<$<COMPILE_LANGUAGE:RC>:-DAGENT_VERSION_TEXT=\\\"${PROJECT_VERSION}\\\">")

# The MSI, part of every build, with a stripped
# copy of the executable. wixl finds the files that the .wxs names only
# relative to its working folder, so they are copied into a staging
# folder first.
find_program(AGENT_WIXL wixl)
if(AGENT_WIXL)
  set(AGENT_MSI "${CMAKE_BINARY_DIR}/rossum-sftp-agent-${PROJECT_VERSION}-x64.msi")
  set(AGENT_MSI_STAGE "${CMAKE_BINARY_DIR}/msi-stage")
  file(MAKE_DIRECTORY "${AGENT_MSI_STAGE}")
  add_custom_command(
    OUTPUT "${AGENT_MSI}"
    COMMAND "${CMAKE_STRIP}" -o "${AGENT_MSI_STAGE}/rossum-sftp-agent.exe"
            "$<TARGET_FILE:rossum-sftp-agent>"
    COMMAND "${CMAKE_COMMAND}" -E copy
            "${CMAKE_SOURCE_DIR}/conf/agent.conf.example"
            "${AGENT_MSI_STAGE}/agent.conf.example"
    COMMAND "${AGENT_WIXL}" --arch x64 -D "Version=${PROJECT_VERSION}"
            -o "${AGENT_MSI}"
            "${CMAKE_SOURCE_DIR}/packaging/windows/rossum-sftp-agent.wxs"
    WORKING_DIRECTORY "${AGENT_MSI_STAGE}"
    DEPENDS rossum-sftp-agent
            "${CMAKE_SOURCE_DIR}/packaging/windows/rossum-sftp-agent.wxs"
            "${CMAKE_SOURCE_DIR}/conf/agent.conf.example"
    COMMENT "Building the Windows installer with wixl")
  add_custom_target(msi ALL DEPENDS "${AGENT_MSI}")
endif()
