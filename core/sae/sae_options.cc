#include "core/sae/sae_options.h"

#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sae::sparse {
namespace {

template <typename E, size_t N>
absl::StatusOr<E> Lookup(const std::array<std::pair<E, absl::string_view>, N>& table,
                         absl::string_view name, absl::string_view what, bool ignore_case) {
  std::string key = ignore_case ? absl::AsciiStrToLower(name) : std::string(name);
  std::string allowed;
  for (const auto& [value, n] : table) {
    if (n == key) return value;
    absl::StrAppend(&allowed, allowed.empty() ? "" : ", ", n);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", name, "' (expected one of: ", allowed, ")"));
}

template <typename E, size_t N>
absl::string_view NameOf(const std::array<std::pair<E, absl::string_view>, N>& table, E value) {
  for (const auto& [v, n] : table) {
    if (v == value) return n;
  }
  return "?";
}

constexpr std::array<std::pair<Architecture, absl::string_view>, 2> kArchitectures = {{
    {Architecture::kStandard, "standard"},
    {Architecture::kTopK, "topk"},
}};
constexpr std::array<std::pair<BDecInit, absl::string_view>, 3> kBDecInits = {{
    {BDecInit::kGeometricMedian, "geometric_median"},
    {BDecInit::kMean, "mean"},
    {BDecInit::kZeros, "zeros"},
}};
constexpr std::array<std::pair<LrSchedule, absl::string_view>, 6> kSchedules = {{
    {LrSchedule::kConstant, "constant"},
    {LrSchedule::kConstantWithWarmup, "constantwithwarmup"},
    {LrSchedule::kLinearWarmupDecay, "linearwarmupdecay"},
    {LrSchedule::kCosineAnnealing, "cosineannealing"},
    {LrSchedule::kCosineAnnealingWarmup, "cosineannealingwarmup"},
    {LrSchedule::kCosineAnnealingWarmRestarts, "cosineannealingwarmrestarts"},
}};

}  // namespace

absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name) {
  return Lookup(kArchitectures, name, "architecture", false);
}
absl::string_view ArchitectureName(Architecture a) { return NameOf(kArchitectures, a); }
absl::StatusOr<BDecInit> ParseBDecInit(absl::string_view name) {
  return Lookup(kBDecInits, name, "b_dec_init_method", false);
}
absl::string_view BDecInitName(BDecInit b) { return NameOf(kBDecInits, b); }
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name) {
  return Lookup(kSchedules, name, "lr_scheduler_name", true);
}
absl::string_view LrScheduleName(LrSchedule s) { return NameOf(kSchedules, s); }

}  // namespace sae::sparse
