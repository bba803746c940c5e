"""Peer test: TransformerLens's HookedTransformer and our engine give the same hook values.

A random Hugging Face GPT-2 (random biases and LayerNorm maps) is saved with save_pretrained;
TransformerLens builds its HookedTransformer from the same weights (peer_gpt2.py) with its
weight processing, with it but without center_writing_weights (SAELens 6's default), and
without it; `saectl model activations` writes every hook, the logits and the
per-position loss for both processings. Every hook within 1e-4 (relative to 1 + |value|),
log-probabilities and per-position losses too (center_unembed shifts logits by a constant per
position). Fails, never skips, when the peers are missing.
"""
import argparse
import json
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_gpt2  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    saectl = peer_gpt2.saectl_path(args.saectl)
    torch.set_num_threads(2)
    failures, checked = [], 0
    tokens = [50256, 464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256, 40, 1101]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        hf = peer_gpt2.write_random_gpt2(model_dir, seed=5)
        for processing in ["transformer_lens", "transformer_lens_uncentered", "none"]:
            tl = peer_gpt2.hooked_transformer(hf, processing)
            with torch.no_grad():
                logits, cache = tl.run_with_cache(torch.tensor([tokens]))
                loss = tl(torch.tensor([tokens]), return_type="loss", loss_per_token=True)
            # Every hook of our engine (TransformerLens 3 adds unembed.hook_in/out: the logits'
            # input and the logits, compared below through log-probabilities).
            names = list(json.loads(peer_gpt2.run(
                [saectl, "model", "info", "--model", model_dir, "-o", "json"]))["hooks"])
            for n in names:
                if n not in cache:
                    failures.append(f"{processing}/{n}: TransformerLens has no such hook")
            names = [n for n in names if n in cache]
            out = os.path.join(tmp, f"{processing}.safetensors")
            cmd = [saectl, "model", "activations", "--model", model_dir, "--tokens",
                   ",".join(map(str, tokens)), "--processing", processing, "--logits", "--loss",
                   "--threads", "2", "--out", out]
            for n in names:
                cmd += ["--hook", n]
            peer_gpt2.run(cmd)
            ours = load_file(out)

            def close(label, a, b, tol=1e-4):
                nonlocal checked
                checked += 1
                a, b = a.double(), b.double()
                if a.shape != b.shape:
                    failures.append(f"{processing}/{label}: shape {tuple(a.shape)} vs TransformerLens {tuple(b.shape)}")
                    return
                finite = torch.isfinite(b)
                diff = (a[finite] - b[finite]).abs()
                if diff.numel() and not bool((diff <= tol * (1 + b[finite].abs())).all()):
                    failures.append(f"{processing}/{label}: max |diff| {diff.max().item():.3g}")

            for n in names:
                if n not in ours:
                    failures.append(f"{processing}/{n}: not written by saectl")
                    continue
                close(n, ours[n], cache[n])
            close("log_probs", torch.log_softmax(ours["logits"].double(), -1),
                  torch.log_softmax(logits.double(), -1))
            close("loss", ours["loss"], loss)
            print(f"{processing}: {len(names)} hooks compared with TransformerLens")
    for f in failures:
        print("MISMATCH", f)
    print(f"eval hooks peer: {checked} comparisons, {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
