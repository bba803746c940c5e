// What a dataset is and how it becomes contexts: the data part of run.yaml.
#ifndef SAE_CORE_DATA_DATASET_OPTIONS_H_
#define SAE_CORE_DATA_DATASET_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>

namespace sae::data {

struct DatasetOptions {
  // run.yaml `dataset_path`. One of:
  //  - a text file: documents separated by lines equal to `text_document_separator` (a file
  //    without such a line is one document);
  //  - a JSONL file (.jsonl, .json, .ndjson): one document per line, `text` for text, `tokens`
  //    or `input_ids` (an array of ids) for a pre-tokenised row; blank lines are skipped;
  //  - a token file: .bin (nanoGPT's raw uint16, or llm.c's with its header) or .npy (uint16 or
  //    int32; 1-D is a token stream, 2-D is pre-tokenised rows); in a stream, documents are
  //    delimited by `bos_token_id` (GPT-2's <|endoftext|>);
  //  - a folder of such files (searched recursively, names starting with '.' skipped), or a glob
  //    matching files ("data/train-*.jsonl"). All files of a dataset have the same format.
  std::string dataset_path;

  // run.yaml `is_dataset_tokenized`. Unset: detected from the files. Set: checked against them;
  // a mismatch is an error.
  std::optional<bool> is_dataset_tokenized;

  // run.yaml `context_size`: ids per context (row). At least 2 when prepend_bos is set.
  int64_t context_size = 128;

  // run.yaml `prepend_bos`: every document gets a BOS in front, and a document that overflows a
  // context continues in the next one after another BOS, so every packed context starts with
  // BOS. false: documents are concatenated with neither.
  bool prepend_bos = true;

  // GPT-2's <|endoftext|>: the BOS of packing and the document delimiter of token streams.
  int32_t bos_token_id = 50256;

  // Ids at or above this are errors naming the file and the line or offset.
  int32_t vocab_size = 50257;

  // The fraction of the dataset's documents that training never reads, held out for evaluations
  // (Dataset::kHeldOutShard): each document is held out or not by a hash of where it starts
  // (Dataset::IsHeldOut), so the held-out documents are spread over the whole dataset and about
  // this fraction of them (and of its tokens) is held out. 0: none. In [0, 0.5].
  double held_out_fraction = 0;

  // A line holding exactly this (a trailing '\r' allowed) separates documents of a text file;
  // the line and the line break in front of it belong to no document. Empty: one document per
  // text file.
  std::string text_document_separator = "<|endoftext|>";
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_DATASET_OPTIONS_H_
