if(TARGET sae_eval)
  sae_benchmark(eval_bench SOURCES eval_bench.cc DEPS sae_eval sae_torch_runtime)
  sae_use_torch(eval_bench)
endif()
