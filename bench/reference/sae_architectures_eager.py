#!/usr/bin/python3
"""One training step of the SAELens 6 architectures in PyTorch eager, for
bench/sae_architectures_bench.

Dense formulations with autograd, as SAELens 6 trains them (sae_lens/saes/*_sae.py): batchtopk
(top k*B of the batch scattered into a dense [B, d_sae] activation, AuxK skipped as no latent is
dead in one step), matryoshka_batchtopk (plus the prefix losses), jumprelu (rectangle-kernel
straight-through estimators, step L0 loss), gated (gate and magnitude paths, L1 and the
auxiliary reconstruction). Decoder rows normalised first and the decoder gradient's parallel
part removed, then Adam, as the service's trainer does. Prints one JSON line with the median
step time.
"""
import argparse
import json
import time

import torch


def rectangle(x):
    return ((x > -0.5) & (x < 0.5)).to(x)


class JumpReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, bw):
        ctx.save_for_backward(x, t)
        ctx.bw = bw
        return x * (x > t).to(x)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        ste = (t / ctx.bw) * rectangle((x - t) / ctx.bw) * g
        return (x > t).to(x) * g, -ste.sum(0), None


class StepFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, bw):
        ctx.save_for_backward(x, t)
        ctx.bw = bw
        return (x > t).to(x)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        return None, -((1.0 / ctx.bw) * rectangle((x - t) / ctx.bw) * g).sum(0), None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True,
                   choices=["batchtopk", "matryoshka_batchtopk", "jumprelu", "gated"])
    p.add_argument("--d-in", type=int, default=768)
    p.add_argument("--expansion", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    D, S, B = a.d_in, a.d_in * a.expansion, a.batch
    W_dec = torch.nn.Parameter(torch.nn.init.kaiming_uniform_(torch.empty(S, D)))
    with torch.no_grad():
        W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_dec = torch.nn.Parameter(torch.zeros(D))
    params = [W_enc, W_dec, b_dec]
    if a.arch == "gated":
        r_mag, b_gate, b_mag = (torch.nn.Parameter(torch.zeros(S)) for _ in range(3))
        params += [r_mag, b_gate, b_mag]
    else:
        b_enc = torch.nn.Parameter(torch.zeros(S))
        params.append(b_enc)
    if a.arch == "jumprelu":
        threshold = torch.nn.Parameter(torch.full((S,), 0.01))
        params.append(threshold)
    widths = [S // 16, S // 4, S]
    opt = torch.optim.Adam(params, lr=1e-4)
    x = torch.randn(B, D)

    def step():
        with torch.no_grad():
            W_dec.data /= W_dec.data.norm(dim=1, keepdim=True)
            if a.arch == "jumprelu":
                threshold.data.clamp_(min=0)
        opt.zero_grad()
        sae_in = x - b_dec
        if a.arch == "gated":
            pi_gate = sae_in @ W_enc + b_gate
            pi_mag = sae_in @ (W_enc * r_mag.exp()) + b_mag
            f = (pi_gate > 0).to(x) * pi_mag.relu()
            x_hat = f @ W_dec + b_dec
            gate = pi_gate.relu()
            l1 = (gate * W_dec.norm(dim=1)).sum(-1).mean()
            aux = (gate @ W_dec.detach() + b_dec.detach() - x).pow(2).sum(-1).mean()
            loss = (x_hat - x).pow(2).sum(-1).mean() + 1.0 * l1 + aux
        elif a.arch == "jumprelu":
            h = sae_in @ W_enc + b_enc
            f = JumpReLUFn.apply(h, threshold, 0.05)
            x_hat = f @ W_dec + b_dec
            l0 = StepFn.apply(h, threshold, 0.05).sum(-1).mean()
            loss = (x_hat - x).pow(2).sum(-1).mean() + 1.0 * l0
        else:
            h = sae_in @ W_enc + b_enc
            acts = h.relu().flatten()
            top = acts.topk(a.k * B)
            f = torch.zeros_like(acts).scatter(-1, top.indices, top.values).view(B, S)
            x_hat = f @ W_dec + b_dec
            loss = (x_hat - x).pow(2).sum(-1).mean()
            if a.arch == "matryoshka_batchtopk":
                decoded, prev = b_dec, 0
                for w in widths[:-1]:
                    decoded = f[:, prev:w] @ W_dec[prev:w] + decoded
                    loss = loss + (decoded - x).pow(2).sum(-1).mean()
                    prev = w
        loss.backward()
        with torch.no_grad():
            W_dec.grad -= (W_dec.grad * W_dec.data).sum(-1, keepdim=True) * W_dec.data
        opt.step()

    step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": sorted(times)[len(times) // 2]}))


if __name__ == "__main__":
    main()
