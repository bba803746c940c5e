if(TARGET sae_sae)
  sae_benchmark(sae_architectures_bench SOURCES sae_architectures_bench.cc DEPS sae_sae sae_torch_runtime)
  sae_use_torch(sae_architectures_bench)
endif()
