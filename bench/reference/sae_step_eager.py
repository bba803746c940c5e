#!/usr/bin/python3
"""One SAE training step in PyTorch eager, for bench/sae_step_bench.

standard: the seed's formulation (normalised MSE + L1, autograd backward, removal of the decoder
gradient's parallel component, Adam), b_enc set for a target L0 with --l0. topk: the dense
formulation (top-k scattered into a dense [B, d_sae] activation, dense decoder matmul, autograd).
Prints one JSON line with the median step time and the torch version. Runs under torch 1.13
(Debian's python3) and 2.x (the peer virtual environment); sae_step_bench runs it under both.
"""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", choices=["standard", "topk"], required=True)
    p.add_argument("--d-in", type=int, default=768)
    p.add_argument("--expansion", type=int, required=True)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--l0", type=float, default=0,
                   help="standard: set b_enc so that each latent fires on L0 / d_sae of the "
                        "tokens (x ~ N(0, I)), as sae_step_bench does; 0 leaves b_enc at 0")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    D, S, B = a.d_in, a.d_in * a.expansion, a.batch
    W_enc = torch.nn.Parameter(torch.nn.init.kaiming_uniform_(torch.empty(D, S)))
    W_dec = torch.nn.Parameter(torch.nn.init.kaiming_uniform_(torch.empty(S, D)))
    with torch.no_grad():
        W_dec /= W_dec.norm(dim=1, keepdim=True)
    b_enc = torch.nn.Parameter(torch.zeros(S))
    if a.l0 > 0:
        with torch.no_grad():
            z = 2 ** 0.5 * torch.erfinv(torch.tensor(1 - 2 * a.l0 / S, dtype=torch.float64))
            b_enc.copy_(W_enc.norm(dim=0) * -float(z))
    b_dec = torch.nn.Parameter(torch.zeros(D))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4)
    x = torch.randn(B, D)

    def step():
        with torch.no_grad():
            W_dec.data /= W_dec.data.norm(dim=1, keepdim=True)
        opt.zero_grad()
        sae_in = x - b_dec
        h = sae_in @ W_enc + b_enc
        if a.arch == "standard":
            f = torch.relu(h)
            x_hat = f @ W_dec + b_dec
            mse = ((x_hat - x).pow(2) / (x - x.mean(0)).norm(dim=-1, keepdim=True)).mean()
            loss = mse + 8e-5 * f.abs().sum(dim=1).mean()
        else:
            top = h.topk(a.k, dim=-1)
            f = torch.zeros_like(h).scatter(-1, top.indices, torch.relu(top.values))
            x_hat = f @ W_dec + b_dec
            loss = (x_hat - x).pow(2).sum(-1).mean()
        loss.backward()
        with torch.no_grad():
            parallel = (W_dec.grad * W_dec.data).sum(-1, keepdim=True)
            W_dec.grad -= parallel * W_dec.data
        opt.step()

    step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "torch": torch.__version__}))


if __name__ == "__main__":
    main()
