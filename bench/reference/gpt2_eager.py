#!/usr/bin/python3
"""PyTorch eager GPT-2 forward (Hugging Face's formulation) for the forward benchmark.

Prints one JSON line: {"tokens_per_s": ..., "seconds": ..., "torch": version} for a GPT-2-shaped
model with random weights, run to the output of block `--layers - 1` (the residual stream after
it) or, with `--layers 0`, not at all. Runs under torch 1.13 (Debian's python3) and 2.x (the peer
virtual environment); gpt2_forward_bench runs it under both.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, required=True, help="blocks to run")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    D, H, B, T = a.d_model, a.heads, a.batch, a.ctx
    dh = D // H
    V = 50257
    wte = torch.randn(V, D) * 0.02
    wpe = torch.randn(1024, D) * 0.02
    blocks = []
    for _ in range(a.layers):
        blocks.append(dict(
            ln1_w=torch.ones(D), ln1_b=torch.zeros(D),
            attn_w=torch.randn(D, 3 * D) * 0.02, attn_b=torch.zeros(3 * D),
            proj_w=torch.randn(D, D) * 0.02, proj_b=torch.zeros(D),
            ln2_w=torch.ones(D), ln2_b=torch.zeros(D),
            fc_w=torch.randn(D, 4 * D) * 0.02, fc_b=torch.zeros(4 * D),
            out_w=torch.randn(4 * D, D) * 0.02, out_b=torch.zeros(D)))
    tokens = torch.randint(0, V, (B, T))
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T)

    def forward():
        x = wte[tokens] + wpe[:T]
        for b in blocks:
            h = F.layer_norm(x, (D,), b["ln1_w"], b["ln1_b"], 1e-5)
            qkv = torch.addmm(b["attn_b"], h.view(-1, D), b["attn_w"]).view(B, T, 3 * D)
            q, k, v = qkv.split(D, dim=2)
            q = q.view(B, T, H, dh).transpose(1, 2)
            k = k.view(B, T, H, dh).transpose(1, 2)
            v = v.view(B, T, H, dh).transpose(1, 2)
            att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
            att = torch.where(mask, att, torch.tensor(torch.finfo(att.dtype).min))
            att = F.softmax(att, dim=-1)
            z = torch.matmul(att, v).transpose(1, 2).reshape(B, T, D)
            x = x + torch.addmm(b["proj_b"], z.view(-1, D), b["proj_w"]).view(B, T, D)
            h = F.layer_norm(x, (D,), b["ln2_w"], b["ln2_b"], 1e-5)
            m = F.gelu(torch.addmm(b["fc_b"], h.view(-1, D), b["fc_w"]), approximate="tanh")
            x = x + torch.addmm(b["out_b"], m, b["out_w"]).view(B, T, D)
        return x

    with torch.inference_mode():
        forward()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            forward()
            times.append(time.perf_counter() - t0)
    best = sorted(times)[len(times) // 2]
    print(json.dumps({"tokens_per_s": B * T / best, "seconds": best,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
