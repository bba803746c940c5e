# Helpers shared by every folder.
#
# LibTorch headers are expensive (~4 s for ATen/ATen.h, ~25 s for torch/torch.h), so one target
# owns a precompiled header of ATen and every target that uses LibTorch reuses it. Only
# the few files that need autograd or c10d include more than ATen.

include(GoogleTest OPTIONAL)

add_library(sae_aten_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/aten_pch.cc)
target_link_libraries(sae_aten_pch PUBLIC ${TORCH_LIBRARIES})
target_precompile_headers(sae_aten_pch PRIVATE <ATen/ATen.h>)
# gRPC's targets add -pthread (which defines _REENTRANT); a header precompiled without it is
# silently rejected, so every LibTorch target compiles with it.
target_compile_options(sae_aten_pch PUBLIC -pthread)

# sae_use_torch(target): link LibTorch and reuse the shared ATen precompiled header.
function(sae_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM sae_aten_pch)
  target_compile_options(${target} PRIVATE -pthread)  # the flags the header was compiled with
endfunction()

# sae_library(name SOURCES ... [TORCH] [DEPS ...]) builds a static library sae_<name>.
function(sae_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(sae_${name} STATIC ${ARG_SOURCES})
  target_include_directories(sae_${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(sae_${name} PUBLIC ${ARG_DEPS})
  target_compile_options(sae_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(ARG_TORCH)
    sae_use_torch(sae_${name})
  endif()
endfunction()

# sae_test(name SOURCES ... [TORCH] [DEPS ...] [TIMEOUT S] [LABELS L]) builds a GoogleTest binary, linked with the
# test-support library (tests/support), and registers its cases with CTest (discovered when the
# tests run, so building stays fast). docs/testing.md has the naming scheme.
function(sae_test name)
  cmake_parse_arguments(ARG "TORCH" "TIMEOUT;LABELS" "SOURCES;DEPS" ${ARGN})
  if(NOT SAE_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} sae_test_support GTest::gmock GTest::gtest_main)
  if(ARG_TORCH)
    sae_use_torch(${name})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set(labels)
  if(ARG_LABELS)
    set(labels LABELS ${ARG_LABELS})
  endif()
  # Listing a LibTorch binary's tests takes seconds under a sanitizer on a loaded machine: more
  # than the default 5 s discovery timeout (scripts/sanitize.sh).
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} ${labels}
    # Two single-item properties: gtest_discover_tests splits a two-item ENVIRONMENT list.
    ENVIRONMENT "SAE_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    ENVIRONMENT_MODIFICATION "SAE_BINARY_DIR=set:${PROJECT_BINARY_DIR}")
endfunction()
