#include "services/common/large_allocations.h"

#include <malloc.h>

namespace sae::service {

bool ReuseLargeAllocations() {
  // Setting either disables glibc's dynamic threshold, which would otherwise adapt.
  const bool mmap_set = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool trim_set = mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
  return mmap_set && trim_set;
}

}  // namespace sae::service
