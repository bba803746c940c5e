#!/usr/bin/python3
"""One GPT-2 training step in PyTorch eager, for bench/gpt2_train_bench.

nanoGPT's formulation: Hugging Face GPT-2 modules (Conv1D-shaped linear maps, LayerNorm, causal
softmax attention, tanh GELU, tied unembedding), full logits and F.cross_entropy, autograd,
clip_grad_norm_(1.0), torch.optim.AdamW with weight decay on 2-D parameters. No dropout.
Prints one JSON line with the median step time.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    L, D, H, T, B, V = a.n_layer, a.d_model, a.n_head, a.context, a.batch, a.vocab

    def param(*shape, std=0.02):
        return torch.nn.Parameter(torch.randn(*shape) * std)

    wte, wpe = param(V, D), param(T, D)
    blocks = []
    for _ in range(L):
        blocks.append({
            "ln1_w": torch.nn.Parameter(torch.ones(D)), "ln1_b": torch.nn.Parameter(torch.zeros(D)),
            "attn_w": param(D, 3 * D), "attn_b": torch.nn.Parameter(torch.zeros(3 * D)),
            "proj_w": param(D, D), "proj_b": torch.nn.Parameter(torch.zeros(D)),
            "ln2_w": torch.nn.Parameter(torch.ones(D)), "ln2_b": torch.nn.Parameter(torch.zeros(D)),
            "fc_w": param(D, 4 * D), "fc_b": torch.nn.Parameter(torch.zeros(4 * D)),
            "out_w": param(4 * D, D), "out_b": torch.nn.Parameter(torch.zeros(D)),
        })
    lnf_w, lnf_b = torch.nn.Parameter(torch.ones(D)), torch.nn.Parameter(torch.zeros(D))
    params = [wte, wpe, lnf_w, lnf_b] + [p for b in blocks for p in b.values()]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, V, (B, T))
    mask = torch.triu(torch.full((T, T), float("-inf")), 1)
    dh = D // H

    def step():
        x = wte[tokens] + wpe[:T]
        for b in blocks:
            y = F.layer_norm(x, (D,), b["ln1_w"], b["ln1_b"])
            q, k, v = (y @ b["attn_w"] + b["attn_b"]).split(D, dim=-1)
            q, k, v = (t.view(B, T, H, dh).transpose(1, 2) for t in (q, k, v))
            att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh) + mask, dim=-1)
            z = (att @ v).transpose(1, 2).reshape(B, T, D)
            x = x + z @ b["proj_w"] + b["proj_b"]
            y = F.layer_norm(x, (D,), b["ln2_w"], b["ln2_b"])
            x = x + F.gelu(y @ b["fc_w"] + b["fc_b"], approximate="tanh") @ b["out_w"] + b["out_b"]
        x = F.layer_norm(x, (D,), lnf_w, lnf_b)
        logits = x[:, :-1] @ wte.t()
        loss = F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()
    times = []
    for _ in range(a.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({"seconds": times[len(times) // 2], "tokens": B * T}))


if __name__ == "__main__":
    main()
