#include "services/common/checkpoint_archive.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/util/status.h"

namespace sae::client {
namespace {

namespace fs = std::filesystem;

void AppendLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadLittleEndian(absl::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return value;
}

// Longest path the format accepts; far beyond what a checkpoint holds, short of silly.
constexpr uint32_t kMaxPathLength = 4096;

}  // namespace

absl::Status CheckArchivePath(absl::string_view path) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint archive: path '", path, "' ", why));
  };
  if (path.empty()) return bad("is empty");
  if (path.size() > kMaxPathLength) return bad("is too long");
  if (path.find('\0') != absl::string_view::npos) return bad("contains a NUL byte");
  if (path.front() == '/') return bad("is absolute");
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return bad("has an empty, '.' or '..' component");
    }
  }
  return absl::OkStatus();
}

// ---- ArchiveReader ----

absl::StatusOr<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(const std::string& dir) {
  std::error_code error;
  fs::file_status status = fs::status(dir, error);
  if (!fs::exists(status)) return absl::NotFoundError(absl::StrCat("no such folder: ", dir));
  if (!fs::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " is not a folder"));
  }
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    std::string relative = fs::relative(it->path(), dir, error).generic_string();
    SAE_RETURN_IF_ERROR(CheckArchivePath(relative));
    paths.push_back(std::move(relative));
  }
  if (error) {
    return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", error.message()));
  }
  std::sort(paths.begin(), paths.end());
  std::vector<int64_t> sizes;
  for (const std::string& path : paths) {
    uintmax_t size = fs::file_size(fs::path(dir) / path, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("cannot stat ", dir, "/", path, ": ", error.message()));
    }
    sizes.push_back(static_cast<int64_t>(size));
  }
  return std::unique_ptr<ArchiveReader>(new ArchiveReader(dir, std::move(paths), std::move(sizes)));
}

ArchiveReader::ArchiveReader(std::string dir, std::vector<std::string> paths,
                             std::vector<int64_t> sizes)
    : dir_(std::move(dir)), paths_(std::move(paths)), sizes_(std::move(sizes)) {
  total_bytes_ = static_cast<int64_t>(kArchiveMagic.size());
  for (size_t i = 0; i < paths_.size(); ++i) {
    total_bytes_ += 4 + static_cast<int64_t>(paths_[i].size()) + 8 + sizes_[i];
  }
  pending_ = std::string(kArchiveMagic);
}

ArchiveReader::~ArchiveReader() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status ArchiveReader::OpenFile(size_t index) {
  std::string path = absl::StrCat(dir_, "/", paths_[index]);
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) return ErrnoStatus("cannot open", path, errno);
  file_remaining_ = sizes_[index];
  AppendLittleEndian(paths_[index].size(), 4, &pending_);
  pending_ += paths_[index];
  AppendLittleEndian(static_cast<uint64_t>(sizes_[index]), 8, &pending_);
  return absl::OkStatus();
}

absl::Status ArchiveReader::Read(size_t max_bytes, std::string* out) {
  out->clear();
  while (out->size() < max_bytes) {
    if (!pending_.empty()) {
      size_t take = std::min(pending_.size(), max_bytes - out->size());
      out->append(pending_, 0, take);
      pending_.erase(0, take);
      continue;
    }
    if (file_ != nullptr && file_remaining_ > 0) {
      size_t want = std::min<size_t>(static_cast<size_t>(file_remaining_), max_bytes - out->size());
      size_t old_size = out->size();
      out->resize(old_size + want);
      size_t got = std::fread(out->data() + old_size, 1, want, file_);
      out->resize(old_size + got);
      file_remaining_ -= static_cast<int64_t>(got);
      if (got < want) {
        return absl::InternalError(absl::StrCat("checkpoint file ", dir_, "/",
                                                paths_[next_file_ - 1],
                                                " shrank or became unreadable while archiving"));
      }
      continue;
    }
    if (file_ != nullptr) {
      // The file should end exactly where its recorded size does.
      bool grew = std::fgetc(file_) != EOF;
      std::fclose(file_);
      file_ = nullptr;
      if (grew) {
        return absl::InternalError(absl::StrCat("checkpoint file ", dir_, "/",
                                                paths_[next_file_ - 1], " grew while archiving"));
      }
    }
    if (next_file_ == paths_.size()) break;
    SAE_RETURN_IF_ERROR(OpenFile(next_file_++));
  }
  return absl::OkStatus();
}

// ---- ArchiveExtractor ----

absl::StatusOr<std::unique_ptr<ArchiveExtractor>> ArchiveExtractor::Create(const std::string& dir) {
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));
  return std::unique_ptr<ArchiveExtractor>(new ArchiveExtractor(dir));
}

ArchiveExtractor::~ArchiveExtractor() = default;

absl::Status ArchiveExtractor::StartFile(const std::string& path, uint64_t size) {
  SAE_RETURN_IF_ERROR(CheckArchivePath(path));
  std::string full = absl::StrCat(dir_, "/", path);
  SAE_RETURN_IF_ERROR(MakeDirectories(fs::path(full).parent_path().string()));
  SAE_ASSIGN_OR_RETURN(file_, AtomicFileWriter::Create(full));
  data_remaining_ = size;
  if (size == 0) {
    SAE_RETURN_IF_ERROR(file_->Commit());
    file_.reset();
    written_.push_back(path);
  }
  return absl::OkStatus();
}

absl::Status ArchiveExtractor::Append(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  auto fail = [&](absl::Status status) {
    error_ = status;
    file_.reset();
    return status;
  };
  // Moves up to `want` bytes from `bytes` into header_; true when header_ has `want` bytes.
  auto fill = [&](size_t want) {
    size_t take = std::min(want - header_.size(), bytes.size());
    header_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    return header_.size() == want;
  };
  while (!bytes.empty()) {
    switch (stage_) {
      case Stage::kMagic:
        if (!fill(kArchiveMagic.size())) break;
        if (header_ != kArchiveMagic) {
          return fail(absl::InvalidArgumentError(
              "checkpoint archive: does not start with SAECKPT1 (not a checkpoint archive)"));
        }
        header_.clear();
        stage_ = Stage::kPathLength;
        break;
      case Stage::kPathLength:
        if (!fill(4)) break;
        path_length_ = static_cast<uint32_t>(ReadLittleEndian(header_));
        header_.clear();
        if (path_length_ == 0 || path_length_ > kMaxPathLength) {
          return fail(absl::InvalidArgumentError(
              absl::StrCat("checkpoint archive: a path length of ", path_length_)));
        }
        stage_ = Stage::kPath;
        break;
      case Stage::kPath:
        if (!fill(path_length_)) break;
        path_ = std::move(header_);
        header_.clear();
        stage_ = Stage::kSize;
        break;
      case Stage::kSize: {
        if (!fill(8)) break;
        uint64_t size = ReadLittleEndian(header_);
        header_.clear();
        absl::Status started = StartFile(path_, size);
        if (!started.ok()) return fail(started);
        stage_ = size == 0 ? Stage::kPathLength : Stage::kData;
        break;
      }
      case Stage::kData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(data_remaining_, bytes.size()));
        absl::Status appended = file_->Append(bytes.substr(0, take));
        if (!appended.ok()) return fail(appended);
        bytes.remove_prefix(take);
        data_remaining_ -= take;
        if (data_remaining_ == 0) {
          absl::Status committed = file_->Commit();
          if (!committed.ok()) return fail(committed);
          file_.reset();
          written_.push_back(path_);
          stage_ = Stage::kPathLength;
        }
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ArchiveExtractor::Finish() {
  if (!error_.ok()) return error_;
  if (stage_ != Stage::kPathLength || !header_.empty()) {
    error_ = absl::InvalidArgumentError(
        stage_ == Stage::kMagic ? "checkpoint archive: empty or shorter than its magic"
        : stage_ == Stage::kData
            ? absl::StrCat("checkpoint archive: cut short in file '", path_, "'")
            : "checkpoint archive: cut short in a file header");
    file_.reset();
    return error_;
  }
  return absl::OkStatus();
}

}  // namespace sae::client
