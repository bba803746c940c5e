#!/usr/bin/env python3
"""tiktoken (OpenAI's Rust tokenizer, from PyPI) on a text file, one thread: the peer of
bench/tokenizer_bench. Run with the peer virtual environment's interpreter
(scripts/peer-venv.sh). GPT-2's encoding is built from the same local BPE files our tokenizer
loads (tiktoken would download them otherwise), checked against the SHA-256 hashes tiktoken
itself pins for GPT-2.

  python tiktoken_throughput.py TOKENIZER_DIR TEXT_FILE [RUNS]

Prints one JSON object: bytes, tokens, checksum (h = h * 31 + id mod 2^32, as
tests/support/peer_tokenizer.h), cold_seconds (a new Encoding's first encode_ordinary of the
whole file) and warm_seconds (the median of RUNS later encodes), tiktoken's version.
"""
import json
import os
import statistics
import sys
import time

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext import openai_public

# tiktoken_ext/openai_public.py's hashes of GPT-2's vocab.bpe and encoder.json.
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def main():
    tokenizer_dir, path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(tokenizer_dir, "vocab.bpe"),
        encoder_json_file=os.path.join(tokenizer_dir, "encoder.json"),
        vocab_bpe_hash=VOCAB_BPE_SHA256, encoder_json_hash=ENCODER_JSON_SHA256)
    encoding = tiktoken.Encoding(name="gpt2", pat_str=openai_public.r50k_pat_str,
                                 mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
    text = open(path, encoding="utf-8").read()
    start = time.perf_counter()
    ids = encoding.encode_ordinary(text)
    cold = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        encoding.encode_ordinary(text)
        times.append(time.perf_counter() - start)
    checksum = 0
    for i in ids:
        checksum = (checksum * 31 + i) % (1 << 32)
    print(json.dumps({"bytes": len(text.encode("utf-8")), "tokens": len(ids), "checksum": checksum,
                      "cold_seconds": cold, "warm_seconds": statistics.median(times),
                      "version": tiktoken.__version__}))


if __name__ == "__main__":
    main()
