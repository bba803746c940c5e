# core/metrics' hot path on prometheus-cpp beside plain atomics (included by bench/CMakeLists.txt).
# No LibTorch, so it does not link sae_bench_util.
if(TARGET sae_metrics)
  add_executable(metrics_bench metrics_bench.cc)
  set_target_properties(metrics_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_include_directories(metrics_bench PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(metrics_bench PRIVATE sae_metrics)
endif()
