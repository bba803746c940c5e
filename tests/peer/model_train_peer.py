"""`saectl model train` writes a folder that Hugging Face transformers itself loads
(GPT2LMHeadModel.from_pretrained, offline) and that gives the engine's logits.

A small GPT-2 (2 layers, d_model 32, the real vocabulary, context 32) trains for a few steps on
a token stream written here (a .npy of uint16 ids, documents delimited by 50256, so no tokenizer
is needed); then the logits of transformers and of `saectl model activations --logits
--processing none` on the same tokens must agree within 1e-4.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import GPT2LMHeadModel

CONTEXT = 32


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    documents = [rng.integers(0, 50000, size=rng.integers(10, 60)) for _ in range(200)]
    stream = np.concatenate([np.append(d, 50256) for d in documents]).astype(np.uint16)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "stream.npy")
        np.save(data, stream)
        out = os.path.join(tmp, "model")
        run([args.saectl, "model", "train", "--preset", "gpt2-tiny", "--n-layer", "2",
             "--d-model", "32", "--n-head", "4", "--context-size", str(CONTEXT),
             "--dataset", data, "--tokens", str(20 * 4 * CONTEXT), "--batch-size", "4",
             "--lr", "1e-2", "--out", out])
        summary = json.load(open(os.path.join(out, "training.json")))

        model = GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
        tokens = [50256] + [int(t) for t in documents[0][:CONTEXT - 1]]
        with torch.no_grad():
            hf_logits = model(torch.tensor([tokens])).logits
        acts = os.path.join(tmp, "logits.safetensors")
        run([args.saectl, "model", "activations", "--model", out, "--tokens",
             ",".join(map(str, tokens)), "--logits", "--processing", "none", "--out", acts])
        ours = load_file(acts)["logits"]
        diff = (ours - hf_logits).abs().max().item()
        print(f"logits of {len(tokens)} tokens: max abs diff {diff:.3g} "
              f"(logit scale {hf_logits.abs().max().item():.3g})")
        if not diff < 1e-4:
            failures.append(f"logits differ by {diff}")
        if not summary["steps"] == 20:
            failures.append(f"training.json reports {summary['steps']} steps, expected 20")
        print(f"held-out loss {summary['held_out_loss']:.4f}, "
              f"unigram entropy {summary['held_out_unigram_entropy']:.4f}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("ok: transformers loads the trained folder and agrees with the engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
