# Dataset packing + sharding tokens/s and mixing-buffer activations/s (included by
# bench/CMakeLists.txt).
if(TARGET sae_data AND TARGET sae_data_buffer AND TARGET sae_tokenizer)
  sae_benchmark(data_bench SOURCES data_bench.cc
    DEPS sae_data sae_data_buffer sae_tokenizer absl::strings)
  sae_use_torch(data_bench)
endif()
