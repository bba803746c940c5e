#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

namespace sae::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

absl::Status Bad(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": invalid safetensors file: ", what));
}

absl::Status BadTensor(absl::string_view source, absl::string_view tensor, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": invalid safetensors file: tensor '", tensor, "': ", what));
}

uint64_t ReadLittleEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? "," : "", shape[i]);
  return s + "]";
}

absl::StatusOr<TensorInfo> ParseEntry(absl::string_view source, const std::string& name,
                                      const nlohmann::json& value, uint64_t data_size) {
  if (name.empty()) return Bad(source, "a tensor has an empty name");
  if (!value.is_object()) return BadTensor(source, name, "entry is not a JSON object");
  TensorInfo info;
  info.name = name;
  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string()) {
    return BadTensor(source, name, "missing or non-string \"dtype\"");
  }
  auto dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype.ok()) return BadTensor(source, name, dtype.status().message());
  info.dtype = *dtype;

  auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array()) {
    return BadTensor(source, name, "missing or non-array \"shape\"");
  }
  for (const nlohmann::json& dim : *shape_it) {
    if (!dim.is_number_integer() ||
        (dim.is_number_integer() && !dim.is_number_unsigned() && dim.get<int64_t>() < 0)) {
      return BadTensor(source, name,
                       absl::StrCat("shape entry ", dim.dump(), " is not a non-negative integer"));
    }
    uint64_t d = dim.get<uint64_t>();
    if (d > (1ull << 48)) return BadTensor(source, name, "shape entry is implausibly large");
    info.shape.push_back(static_cast<int64_t>(d));
  }

  auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return BadTensor(source, name,
                     "\"data_offsets\" must be an array of two non-negative integers [begin, end)");
  }
  info.begin = (*offsets_it)[0].get<uint64_t>();
  info.end = (*offsets_it)[1].get<uint64_t>();
  if (info.end < info.begin) {
    return BadTensor(
        source, name,
        absl::StrCat("data_offsets [", info.begin, ", ", info.end, ") end before they begin"));
  }
  if (info.end > data_size) {
    return BadTensor(source, name,
                     absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                                  ") reach past the end of the data section (", data_size,
                                  " bytes): the file is truncated or the header is wrong"));
  }
  uint64_t expected = DTypeSize(info.dtype);
  for (int64_t d : info.shape) {
    if (__builtin_mul_overflow(expected, static_cast<uint64_t>(d), &expected)) {
      return BadTensor(source, name, "shape overflows 64-bit byte count");
    }
  }
  if (expected != info.nbytes()) {
    return BadTensor(
        source, name,
        absl::StrCat("shape ", ShapeString(info.shape), " of ", DTypeName(info.dtype), " needs ",
                     expected, " bytes but data_offsets span ", info.nbytes()));
  }
  return info;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         uint64_t file_size,
                                                         absl::string_view source) {
  if (file_size < 8 || prefix.size() < 8) {
    return Bad(source, absl::StrCat("file is ", file_size,
                                    " bytes, shorter than the 8-byte header length"));
  }
  uint64_t n = ReadLittleEndian64(prefix.data());
  if (n > kMaxHeaderBytes) {
    return Bad(source, absl::StrCat("header length ", n, " exceeds the 100 MiB limit"));
  }
  if (n > file_size - 8) {
    return Bad(source, absl::StrCat("header length ", n, " exceeds the file size (", file_size,
                                    " bytes): the file is truncated or not safetensors"));
  }
  if (prefix.size() < 8 + n) return Bad(source, "header was not read completely");
  absl::string_view text = prefix.substr(8, n);
  if (text.empty() || text.front() != '{') {
    return Bad(source, "header does not start with '{' (not a JSON object)");
  }
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Bad(source, "header is not valid JSON");
  if (!json.is_object()) return Bad(source, "header is not a JSON object");

  SafetensorsHeader header;
  header.data_start = 8 + n;
  uint64_t data_size = file_size - header.data_start;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Bad(source, "__metadata__ is not a JSON object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Bad(source, absl::StrCat("__metadata__ value of '", m.key(), "' is not a string"));
        }
        header.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SAE_ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(source, it.key(), *it, data_size));
    header.tensors.push_back(std::move(info));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : header.tensors) {
    if (t.begin < covered) {
      return BadTensor(source, t.name,
                       absl::StrCat("data_offsets [", t.begin, ", ", t.end, ") overlap tensor '",
                                    previous ? previous->name : "", "'"));
    }
    if (t.begin > covered) {
      return BadTensor(
          source, t.name,
          absl::StrCat("data_offsets start at ", t.begin, " but the previous tensor ends at ",
                       covered, ": the data section has a hole"));
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    return Bad(source, absl::StrCat("tensors cover ", covered, " bytes but the data section has ",
                                    data_size, " (trailing bytes not described by the header)"));
  }
  return header;
}

SafetensorsFile::SafetensorsFile(std::string path, SafetensorsHeader header, const uint8_t* map,
                                 size_t size)
    : path_(std::move(path)), header_(std::move(header)), map_(map), map_size_(size) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr && map_size_ > 0) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open safetensors file", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoStatus("cannot stat", path, e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* map = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return ErrnoStatus("cannot memory-map", path, e);
    }
    map = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  absl::string_view bytes(reinterpret_cast<const char*>(map), size);
  auto header = ParseSafetensorsHeader(bytes, size, path);
  if (!header.ok()) {
    if (map != nullptr) ::munmap(const_cast<uint8_t*>(map), size);
    return header.status();
  }
  return std::unique_ptr<SafetensorsFile>(
      new SafetensorsFile(path, std::move(header).value(), map, size));
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

absl::Span<const uint8_t> SafetensorsFile::Data(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(map_ + header_.data_start + info.begin, info.nbytes());
}

absl::Status SafetensorsWriter::Check(const std::string& name, DType dtype,
                                      const std::vector<int64_t>& shape, size_t bytes) const {
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", name, "'"));
  }
  for (const auto& e : entries_) {
    if (e->name == name) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' added twice"));
    }
  }
  uint64_t expected = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' has a negative dimension"));
    }
    expected *= static_cast<uint64_t>(d);
  }
  if (expected != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': shape ",
                                                   ShapeString(shape), " of ", DTypeName(dtype),
                                                   " needs ", expected, " bytes, got ", bytes));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape,
                                    absl::Span<const uint8_t> data) {
  SAE_RETURN_IF_ERROR(Check(name, dtype, shape, data.size()));
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->dtype = dtype;
  entry->shape = std::move(shape);
  entry->owned.assign(reinterpret_cast<const char*>(data.data()), data.size());
  entry->data = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(entry->owned.data()),
                                          entry->owned.size());
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddView(std::string name, DType dtype, std::vector<int64_t> shape,
                                        absl::Span<const uint8_t> data) {
  SAE_RETURN_IF_ERROR(Check(name, dtype, shape, data.size()));
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->dtype = dtype;
  entry->shape = std::move(shape);
  entry->data = data;
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::string SafetensorsWriter::HeaderJson() const {
  // nlohmann::json sorts keys; the reference implementation does too, so this is fine for
  // readers, while the data stays in insertion order.
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    uint64_t end = offset + e->data.size();
    header[e->name] = {
        {"dtype", DTypeName(e->dtype)}, {"shape", e->shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  return text;
}

std::string SafetensorsWriter::Serialize() const {
  std::string header = HeaderJson();
  size_t total = 8 + header.size();
  for (const auto& e : entries_) total += e->data.size();
  std::string out;
  out.reserve(total);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  for (const auto& e : entries_)
    out.append(reinterpret_cast<const char*>(e->data.data()), e->data.size());
  return out;
}

absl::Status SafetensorsWriter::Write(const std::string& path) const {
  std::string header = HeaderJson();
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  SAE_ASSIGN_OR_RETURN(auto writer, AtomicFileWriter::Create(path));
  SAE_RETURN_IF_ERROR(writer->Append(length));
  SAE_RETURN_IF_ERROR(writer->Append(header));
  for (const auto& e : entries_) {
    SAE_RETURN_IF_ERROR(writer->Append(
        absl::string_view(reinterpret_cast<const char*>(e->data.data()), e->data.size())));
  }
  return writer->Commit();
}

}  // namespace sae::io
