# The console's progress history: recording a report beside the run-record write of the same
# report, and reading a full history (included by bench/CMakeLists.txt).
if(TARGET sae_controller_console)
  sae_benchmark(progress_history_bench SOURCES progress_history_bench.cc
    DEPS sae_controller_console absl::time absl::strings)
endif()
