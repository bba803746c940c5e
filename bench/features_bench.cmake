if(TARGET sae_features)
  sae_benchmark(features_bench SOURCES features_bench.cc DEPS sae_features sae_torch_runtime)
  sae_use_torch(features_bench)
endif()
