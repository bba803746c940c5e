#include "core/sae/sae_options.h"

namespace sae::sparse {

absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name) {
  return config::ParseChoice<Architecture>(name, "architecture");
}
absl::string_view ArchitectureName(Architecture a) { return config::ToString(a); }
absl::StatusOr<BDecInit> ParseBDecInit(absl::string_view name) {
  return config::ParseChoice<BDecInit>(name, "b_dec_init_method");
}
absl::string_view BDecInitName(BDecInit b) { return config::ToString(b); }
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name) {
  return config::ParseChoice<LrSchedule>(name, "lr_scheduler_name");
}
absl::string_view LrScheduleName(LrSchedule s) { return config::ToString(s); }

}  // namespace sae::sparse
