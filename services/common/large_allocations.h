// glibc malloc settings for processes that allocate and free many same-sized tensors of
// megabytes (activation batches): keep them in the heap for reuse instead of mapping fresh,
// zeroed pages from the kernel for each one and unmapping them after.
#ifndef SAE_SERVICES_COMMON_LARGE_ALLOCATIONS_H_
#define SAE_SERVICES_COMMON_LARGE_ALLOCATIONS_H_

namespace sae::service {

// Serves allocations up to 32 MiB (glibc's maximum mmap threshold) from the heap and lets the
// heap keep up to 512 MiB of freed memory before it returns any to the kernel. Measured on the
// 2-core development machine (bench/stream_bench): a server and a trainer on the same cores
// spend about a fifth less system time and finish about 7% sooner. Call first thing in main,
// before any thread starts. Returns false when glibc refused a setting.
bool ReuseLargeAllocations();

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_LARGE_ALLOCATIONS_H_
