// The safetensors reader on arbitrary bytes (a whole file). Properties: the header parser never
// crashes; what it accepts lies inside the file; SafetensorsFile::Open of the same bytes agrees
// with it; and writing the accepted tensors back (SafetensorsWriter) gives a file that parses to
// the same tensors, bytes and metadata.
#include <cstring>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors.h"
#include "fuzz/scratch_dir.h"

namespace {

using sae::fuzz::PropertyFailed;
using sae::io::SafetensorsHeader;

void CheckSameTensors(const SafetensorsHeader& a, absl::string_view a_bytes,
                      const SafetensorsHeader& b, absl::string_view b_bytes) {
  if (a.tensors.size() != b.tensors.size() || a.metadata != b.metadata) {
    PropertyFailed("a rewritten file has other tensors or metadata");
  }
  std::map<std::string, const sae::io::TensorInfo*> b_by_name;
  for (const auto& y : b.tensors) b_by_name[y.name] = &y;
  for (const auto& x : a.tensors) {
    auto found = b_by_name.find(x.name);
    if (found == b_by_name.end()) PropertyFailed(absl::StrCat("tensor '", x.name, "' lost"));
    const auto& y = *found->second;
    if (x.dtype != y.dtype || x.shape != y.shape ||
        a_bytes.substr(a.data_start + x.begin, x.nbytes()) !=
            b_bytes.substr(b.data_start + y.begin, y.nbytes())) {
      PropertyFailed(absl::StrCat("tensor '", x.name, "' differs after a rewrite"));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes = sae::fuzz::AsAbslBytes(data, size);
  auto header = sae::io::ParseSafetensorsHeader(bytes, bytes.size(), "fuzz.safetensors");

  const std::string path =
      sae::fuzz::WriteScratchFile("fuzz.safetensors", sae::fuzz::AsBytes(data, size));
  auto file = sae::io::SafetensorsFile::Open(path);
  if (header.ok() != file.ok()) {
    PropertyFailed(absl::StrCat("ParseSafetensorsHeader and Open disagree: ",
                                header.status().ToString(), " vs ", file.status().ToString()));
  }
  if (!header.ok()) return 0;

  sae::io::SafetensorsWriter writer;
  for (const auto& info : header->tensors) {
    if (info.end > bytes.size() - header->data_start) PropertyFailed("tensor past the end");
    const sae::io::TensorInfo* found = (*file)->Find(info.name);
    if (found == nullptr) PropertyFailed(absl::StrCat("Open lost tensor '", info.name, "'"));
    absl::Span<const uint8_t> mapped = (*file)->Data(*found);
    if (mapped.size() != info.nbytes() ||
        (info.nbytes() > 0 &&
         std::memcmp(mapped.data(), data + header->data_start + info.begin, info.nbytes()) != 0)) {
      PropertyFailed(absl::StrCat("Open maps other bytes for '", info.name, "'"));
    }
    absl::Status added = writer.Add(info.name, info.dtype, info.shape, mapped);
    if (!added.ok())
      PropertyFailed(absl::StrCat("the writer refuses a read tensor: ", added.ToString()));
  }
  for (const auto& [key, value] : header->metadata) writer.SetMetadata(key, value);
  const std::string rewritten = writer.Serialize();
  auto reread = sae::io::ParseSafetensorsHeader(rewritten, rewritten.size(), "rewritten");
  if (!reread.ok())
    PropertyFailed(absl::StrCat("a rewritten file is refused: ", reread.status().ToString()));
  CheckSameTensors(*header, bytes, *reread, rewritten);
  return 0;
}
