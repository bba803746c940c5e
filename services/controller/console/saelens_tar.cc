#include "services/controller/console/saelens_tar.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sae::controller {
namespace {

constexpr absl::string_view kMagic = "SAECKPT1";
constexpr uint64_t kMaxPathLength = 4096;
constexpr size_t kBlock = 512;

uint64_t LittleEndian(absl::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

// `value` in octal, zero-padded to width - 1 digits and a NUL, into `field`.
void Octal(char* field, size_t width, uint64_t value) {
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
}

// A ustar header block of a regular file. `name` must fit (callers keep names short: the
// folder and a SAELens file name); longer ones are split into prefix and name.
std::string TarHeader(const std::string& name, uint64_t size) {
  std::string block(kBlock, '\0');
  char* h = block.data();
  std::string prefix, base = name;
  if (base.size() > 100) {
    size_t slash = base.rfind('/', 155);
    if (slash != std::string::npos) {
      prefix = base.substr(0, slash);
      base = base.substr(slash + 1);
    }
  }
  std::memcpy(h, base.data(), std::min<size_t>(base.size(), 100));
  Octal(h + 100, 8, 0644);
  Octal(h + 108, 8, 0);
  Octal(h + 116, 8, 0);
  Octal(h + 124, 12, size);
  Octal(h + 136, 12, 0);
  std::memset(h + 148, ' ', 8);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memcpy(h + 345, prefix.data(), std::min<size_t>(prefix.size(), 155));
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(h[i]);
  std::snprintf(h + 148, 8, "%06o", sum);  // six digits, NUL, and the space left from above
  h[155] = ' ';
  return block;
}

}  // namespace

SaeLensTar::SaeLensTar(std::string folder) : folder_(std::move(folder)) {}

absl::Status SaeLensTar::BeginFile(std::string* out) {
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path_.substr(0, slash + 1);
  const std::string name = path_.substr(dir.size());
  if (!sae_dir_ && name == "cfg.json") sae_dir_ = dir;
  included_ = sae_dir_ && *sae_dir_ == dir;
  if (included_) {
    out->append(TarHeader(absl::StrCat(folder_, "/", name), size_));
    ++files_;
  }
  return absl::OkStatus();
}

absl::Status SaeLensTar::Feed(absl::string_view piece, std::string* out) {
  while (!piece.empty()) {
    if (part_ == Part::kData) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, piece.size()));
      if (included_) out->append(piece.data(), take);
      piece.remove_prefix(take);
      remaining_ -= take;
      if (remaining_ == 0) {
        if (included_ && size_ % kBlock != 0) out->append(kBlock - size_ % kBlock, '\0');
        part_ = Part::kPathLength;
      }
      continue;
    }
    size_t want = part_ == Part::kMagic        ? kMagic.size()
                  : part_ == Part::kPathLength ? 4
                  : part_ == Part::kSize       ? 8
                                               : static_cast<size_t>(path_length_);
    const size_t take = std::min(want - pending_.size(), piece.size());
    pending_.append(piece.data(), take);
    piece.remove_prefix(take);
    if (pending_.size() < want) continue;
    switch (part_) {
      case Part::kMagic:
        if (pending_ != kMagic) {
          return absl::InvalidArgumentError("the checkpoint is not a SAECKPT1 archive");
        }
        part_ = Part::kPathLength;
        break;
      case Part::kPathLength:
        path_length_ = LittleEndian(pending_);
        if (path_length_ == 0 || path_length_ > kMaxPathLength) {
          return absl::InvalidArgumentError(
              absl::StrCat("the checkpoint archive has a path of ", path_length_, " bytes"));
        }
        part_ = Part::kPath;
        break;
      case Part::kPath:
        path_ = pending_;
        part_ = Part::kSize;
        break;
      case Part::kSize:
        size_ = remaining_ = LittleEndian(pending_);
        if (absl::Status begun = BeginFile(out); !begun.ok()) return begun;
        part_ = Part::kData;
        if (size_ == 0) part_ = Part::kPathLength;
        break;
      case Part::kData:
        break;
    }
    pending_.clear();
  }
  return absl::OkStatus();
}

absl::Status SaeLensTar::Finish(std::string* out) {
  if (part_ != Part::kPathLength || !pending_.empty()) {
    return absl::DataLossError("the checkpoint archive ended inside a file");
  }
  if (!sae_dir_) return absl::NotFoundError("the checkpoint holds no cfg.json (no SAELens folder)");
  out->append(2 * kBlock, '\0');
  return absl::OkStatus();
}

}  // namespace sae::controller
