# Data-plane throughput: loopback stream capacity (f32, bf16) beside memcpy, beside GPT-2 small
# generation, and 1 server + 1 trainer beside the single process (included by
# bench/CMakeLists.txt).
if(TARGET sae_activation_server AND TARGET sae_trainer_service AND TARGET sae_test_support)
  sae_benchmark(stream_bench SOURCES stream_bench.cc
    DEPS sae_activation_server sae_trainer_service sae_training sae_torch_runtime
         sae_test_support nlohmann_json::nlohmann_json)
  sae_use_torch(stream_bench)
  add_dependencies(stream_bench sae-activation-server sae-trainer)
endif()
