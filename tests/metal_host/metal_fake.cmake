# ENIGMA_METAL_FAKE=ON (Linux): compiles the Metal device,
# src/runtime/metal/metal_device.mm, with warnings as errors against
# tests/metal_host/Metal/Metal.h and links it with the fake Metal
# (fake_metal.mm), so the Python tests can run MetalRuntime on it
# (docs/metal.md). Needs clang (GCC's Objective-C++ rejects @autoreleasepool),
# GNUstep's Foundation and GCC's Objective-C runtime:
#   apt-get install clang libgnustep-base-dev gobjc++
# Included from the top-level CMakeLists.txt after enigma_core exists.

set(_fake_dir ${CMAKE_CURRENT_SOURCE_DIR}/tests/metal_host)
set(_missing "ENIGMA_METAL_FAKE needs clang, GNUstep's Foundation and GCC's Objective-C runtime headers "
             "(Debian/Ubuntu: apt-get install clang libgnustep-base-dev gobjc++)")

find_program(ENIGMA_GNUSTEP_CONFIG gnustep-config)
find_program(ENIGMA_GCC NAMES gcc cc)
if(NOT CMAKE_OBJCXX_COMPILER)
  find_program(ENIGMA_OBJCXX_CLANG NAMES clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14)
  if(ENIGMA_OBJCXX_CLANG)
    set(CMAKE_OBJCXX_COMPILER ${ENIGMA_OBJCXX_CLANG})
  endif()
endif()
if(NOT ENIGMA_GNUSTEP_CONFIG OR NOT ENIGMA_GCC OR NOT CMAKE_OBJCXX_COMPILER)
  message(FATAL_ERROR "${_missing}")
endif()
enable_language(OBJCXX)
if(NOT CMAKE_OBJCXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "ENIGMA_METAL_FAKE compiles Objective-C++ with clang (GCC's rejects @autoreleasepool); "
                      "CMAKE_OBJCXX_COMPILER is ${CMAKE_OBJCXX_COMPILER}")
endif()

# GCC's Objective-C runtime headers (<objc/objc.h>, from gobjc++) live in
# GCC's private include folder; only the objc/ folder is exposed, so clang
# keeps its own stddef.h and friends.
execute_process(COMMAND ${ENIGMA_GCC} -print-file-name=include OUTPUT_VARIABLE _gcc_include
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT EXISTS ${_gcc_include}/objc/objc.h)
  message(FATAL_ERROR "${_missing} (no objc/objc.h under ${_gcc_include})")
endif()
set(_objc_include ${CMAKE_CURRENT_BINARY_DIR}/objc-runtime-include)
file(MAKE_DIRECTORY ${_objc_include})
file(CREATE_LINK ${_gcc_include}/objc ${_objc_include}/objc SYMBOLIC)

# GNUstep's flags: its defines and header folders; its -g/-O2/-Wall/-MMD are
# left to this build.
execute_process(COMMAND ${ENIGMA_GNUSTEP_CONFIG} --objc-flags OUTPUT_VARIABLE _gs_flags
                OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${ENIGMA_GNUSTEP_CONFIG} --base-libs OUTPUT_VARIABLE _gs_libs
                OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(_gs_flags UNIX_COMMAND "${_gs_flags}")
separate_arguments(_gs_libs UNIX_COMMAND "${_gs_libs}")
set(_objc_options -fobjc-runtime=gcc -fno-objc-arc -fobjc-exceptions)
set(_objc_includes ${_objc_include})
foreach(f IN LISTS _gs_flags)
  if(f MATCHES "^-D" OR f MATCHES "^-fconstant-string-class=")
    list(APPEND _objc_options ${f})
  elseif(f MATCHES "^-I(/.+)$")
    if(IS_DIRECTORY "${CMAKE_MATCH_1}")
      list(APPEND _objc_includes ${CMAKE_MATCH_1})
    endif()
  endif()
endforeach()
set(_link)
foreach(f IN LISTS _gs_libs)
  if(f MATCHES "^-[lL]")
    list(APPEND _link ${f})
  endif()
endforeach()
# System headers: GNUstep's and the runtime's own warnings are not ours.
foreach(dir IN LISTS _objc_includes)
  list(APPEND _objc_options -isystem ${dir})
endforeach()

set(_mm_sources ${CMAKE_CURRENT_SOURCE_DIR}/src/runtime/metal/metal_device.mm ${_fake_dir}/fake_metal.mm)
target_sources(enigma_core PRIVATE ${_mm_sources})
set_source_files_properties(${_mm_sources} PROPERTIES COMPILE_OPTIONS "${_objc_options}"
                            COMPILE_DEFINITIONS ENIGMA_METAL_FAKE INCLUDE_DIRECTORIES ${_fake_dir})
# Metal's backend descriptor has a device in this build too.
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/src/runtime/metal/metal_backend.cpp PROPERTIES
                            COMPILE_DEFINITIONS ENIGMA_METAL_FAKE)
target_link_libraries(enigma_core PUBLIC ${_link})
if(CMAKE_CXX_COMPILER_LAUNCHER)
  set_property(TARGET enigma_core PROPERTY OBJCXX_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
endif()
message(STATUS "Metal device compiled against the fake Metal (tests/metal_host) with ${CMAKE_OBJCXX_COMPILER}")
