if(TARGET sae_sae)
  sae_benchmark(sae_step_bench SOURCES sae_step_bench.cc DEPS sae_sae sae_torch_runtime)
  sae_use_torch(sae_step_bench)
endif()
