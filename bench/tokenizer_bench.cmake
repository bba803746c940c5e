# GPT-2 tokenizer MB/s beside js-tiktoken's (included by bench/CMakeLists.txt).
if(TARGET sae_tokenizer AND TARGET sae_test_support)
  sae_benchmark(tokenizer_bench SOURCES tokenizer_bench.cc
    DEPS sae_tokenizer sae_test_support absl::strings nlohmann_json::nlohmann_json)
endif()
