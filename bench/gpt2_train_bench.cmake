if(TARGET sae_model_training)
  sae_benchmark(gpt2_train_bench SOURCES gpt2_train_bench.cc DEPS sae_model_training sae_torch_runtime)
  sae_use_torch(gpt2_train_bench)
endif()
