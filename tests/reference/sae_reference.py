#!/usr/bin/python3
"""Reference check of the SAE training step against an independent PyTorch implementation.

The implementation below follows docs/definitions.md (the seed's standard SAE: normalised MSE, L1,
ghost gradients; the seed's LambdaLR schedules with scheduler.step() before optimizer.step();
unit-norm decoder rows and removal of the parallel gradient; torch.optim.Adam) and SAELens's
TopK with AuxK, all with autograd and dense tensors. On fixed weights and batches it compares
loss terms, the gradients Adam applies and the parameters after several steps with what
`sae_step_harness` computes, within 1e-5 relative.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402


def seed_lambda(name, warmup, total, lr_end):
    if name == "constant":
        return lambda s: 1.0
    if name == "constantwithwarmup":
        return lambda s: min(1.0, (s + 1) / warmup)
    if name == "linearwarmupdecay":
        return lambda s: (s + 1) / warmup if s < warmup else (total - s) / (total - warmup)
    if name == "cosineannealingwarmup":
        def f(s):
            if s < warmup:
                return (s + 1) / warmup
            progress = (s - warmup) / (total - warmup)
            return lr_end + 0.5 * (1 - lr_end) * (1 + math.cos(math.pi * progress))
        return f
    raise ValueError(name)


def standard_loss(p, x, dead, l1_coefficient, use_ghost):
    W_enc, b_enc, W_dec, b_dec = p
    sae_in = x - b_dec
    h = sae_in @ W_enc + b_enc
    f = torch.relu(h)
    x_hat = f @ W_dec + b_dec
    x_centred = x - x.mean(dim=0, keepdim=True)
    mse_elem = (x_hat - x).pow(2) / x_centred.norm(dim=-1, keepdim=True)
    mse = mse_elem.mean()
    sparsity = f.abs().sum(dim=1).mean()
    l1 = l1_coefficient * sparsity
    ghost = torch.tensor(0.0)
    if use_ghost and bool(dead.any()):
        residual = x - x_hat
        l2_norm_residual = residual.norm(dim=-1)
        acts_dead = torch.exp(h[:, dead])
        ghost_out = acts_dead @ W_dec[dead, :]
        l2_norm_ghost = ghost_out.norm(dim=-1)
        factor = l2_norm_residual / (1e-6 + l2_norm_ghost * 2)
        ghost_out = ghost_out * factor[:, None].detach()
        residual_centred = residual - residual.mean(dim=0, keepdim=True)
        mse_ghost = (ghost_out - residual.detach()).pow(2) / residual_centred.detach().norm(dim=-1, keepdim=True)
        rescale = (mse_elem / (mse_ghost + 1e-6)).detach()
        ghost = (rescale * mse_ghost).mean()
    loss = mse + l1 + ghost
    return loss, [loss, mse, sparsity, ghost, torch.tensor(0.0)], f, x_hat


def topk_loss(p, x, dead, k, aux_coefficient):
    W_enc, b_enc, W_dec, b_dec = p
    h = (x - b_dec) @ W_enc + b_enc
    top = h.topk(k, dim=-1)
    f = torch.zeros_like(h).scatter(-1, top.indices, torch.relu(top.values))
    x_hat = f @ W_dec + b_dec
    mse = (x_hat - x).pow(2).sum(-1).mean()
    aux = torch.tensor(0.0)
    n_dead = int(dead.sum())
    if n_dead > 0:
        residual = (x - x_hat).detach()
        half = x.shape[-1] // 2
        k_aux = min(half, n_dead)
        scale = min(n_dead / half, 1.0)
        latents = torch.where(dead[None], h, torch.tensor(-float("inf")))
        t = latents.topk(k_aux, dim=-1)
        aux_acts = torch.zeros_like(h).scatter(-1, t.indices, t.values)
        recons = aux_acts @ W_dec + b_dec
        aux = aux_coefficient * scale * (recons - residual).pow(2).sum(-1).mean()
    loss = mse + aux
    return loss, [loss, mse, f.sum(-1).mean(), torch.tensor(0.0), aux], f, x_hat


def reference_run(init, batches, o):
    params = [init[n].clone().requires_grad_(True) for n in ["W_enc", "b_enc", "W_dec", "b_dec"]]
    opt = torch.optim.Adam(params, lr=o["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, seed_lambda(o["lr_scheduler_name"], o["lr_warm_up_steps"], o["total_steps"], o["lr"] / 10))
    d_sae = params[0].shape[1]
    passes = torch.zeros(d_sae, dtype=torch.long)
    out = []
    for s in range(batches.shape[0]):
        x = batches[s]
        with torch.no_grad():
            params[2].data /= params[2].data.norm(dim=1, keepdim=True)
        sched.step()
        opt.zero_grad()
        if o["architecture"] == "standard":
            dead = passes > o["dead_feature_window"]
            loss, terms, f, x_hat = standard_loss(params, x, dead, o["l1_coefficient"], o["use_ghost_grads"])
        else:
            steps = -(-o["dead_tokens_threshold"] // x.shape[0])
            dead = passes >= steps
            loss, terms, f, x_hat = topk_loss(params, x, dead, o["k"], o["aux_k_coefficient"])
        did_fire = (f > 0).sum(0) > 0
        passes += 1
        passes[did_fire] = 0
        loss.backward()
        with torch.no_grad():
            W_dec = params[2]
            parallel = (W_dec.grad * W_dec.data).sum(-1, keepdim=True)
            W_dec.grad -= parallel * W_dec.data
            variance = (x - x.mean(0)).pow(2).sum(-1)
            ev = (1 - (x - x_hat).pow(2).sum(-1) / variance).mean()
            l0 = (f > 0).float().sum(-1).mean()
        grads = [p.grad.detach().clone() for p in params]
        opt.step()
        out.append(dict(terms=[float(t) for t in terms] + [float(l0), float(ev)], grads=grads,
                        dead=int(dead.sum())))
    return out, [p.detach() for p in params]


def rel(a, b):
    a, b = a.double(), b.double()
    denom = max(b.norm().item(), 1e-12)
    return (a - b).norm().item() / denom


def check_case(harness, tmp, name, o, init, batches, failures, tol=1e-5):
    path_in = os.path.join(tmp, f"{name}_in.safetensors")
    path_out = os.path.join(tmp, f"{name}_out.safetensors")
    safetensors_py.save(path_in, dict(init, batches=batches), {"options": json.dumps(o)})
    subprocess.run([harness, path_in, path_out], check=True)
    ours = safetensors_py.load(path_out)
    ref, final = reference_run(init, batches, o)
    names = ["W_enc", "b_enc", "W_dec", "b_dec"]
    labels = ["overall", "mse", "l1", "ghost", "aux", "l0", "explained_variance"]
    ghost_steps = 0
    for s, r in enumerate(ref):
        terms = ours[f"step{s}.loss"]
        for i, label in enumerate(labels):
            a, b = float(terms[i]), r["terms"][i]
            if abs(a - b) > tol * max(abs(b), 1e-3):
                failures.append(f"{name} step {s} {label}: ours {a:.8g} reference {b:.8g}")
        if int(ours[f"step{s}.dead"][0]) != r["dead"]:
            failures.append(f"{name} step {s}: {int(ours[f'step{s}.dead'][0])} dead, reference {r['dead']}")
        if r["terms"][3] > 0 or r["terms"][4] > 0:
            ghost_steps += 1
        for i, n in enumerate(names):
            e = rel(ours[f"step{s}.grad.{n}"], r["grads"][i])
            if e > tol:
                failures.append(f"{name} step {s} grad {n}: relative error {e:.3g}")
    for i, n in enumerate(names):
        e = rel(ours[f"final.{n}"], final[i])
        if e > tol:
            failures.append(f"{name} final {n}: relative error {e:.3g}")
    print(f"{name}: {len(ref)} steps, {ghost_steps} with ghost/AuxK loss active")
    if ghost_steps == 0:
        failures.append(f"{name}: the dead-latent loss never ran; the case tests nothing")


def make_init(d_in, d_sae, g, dead_features):
    W_enc = torch.empty(d_in, d_sae).uniform_(-1, 1, generator=g) * math.sqrt(6 / d_sae)
    W_dec = torch.empty(d_sae, d_in).uniform_(-1, 1, generator=g) * math.sqrt(6 / d_in)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    b_enc = torch.randn(d_sae, generator=g) * 0.05
    b_enc[:dead_features] = -20.0  # these never fire, so ghost gradients / AuxK get to work
    b_dec = torch.randn(d_in, generator=g) * 0.1
    return dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    failures = []
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        d_in, d_sae, B, steps = 16, 64, 32, 6
        batches = torch.randn(steps, B, d_in, generator=g) * 2 + 0.5
        standard = dict(architecture="standard", lr=1e-3, lr_scheduler_name="constantwithwarmup",
                        lr_warm_up_steps=3, total_steps=steps, l1_coefficient=5e-3,
                        use_ghost_grads=True, dead_feature_window=0)
        check_case(args.harness, tmp, "standard+ghost", standard, make_init(d_in, d_sae, g, 10), batches,
                   failures)
        decay = dict(standard, lr_scheduler_name="linearwarmupdecay", lr_warm_up_steps=2, total_steps=8)
        check_case(args.harness, tmp, "standard+linearwarmupdecay", decay, make_init(d_in, d_sae, g, 10),
                   batches, failures)
        topk = dict(architecture="topk", k=4, lr=1e-3, lr_scheduler_name="constant", lr_warm_up_steps=0,
                    total_steps=steps, l1_coefficient=0.0, dead_feature_window=0,
                    dead_tokens_threshold=B, aux_k_coefficient=1 / 32)
        check_case(args.harness, tmp, "topk+auxk", topk, make_init(d_in, d_sae, g, 0), batches, failures)
    for f in failures:
        print("MISMATCH", f)
    print(f"sae reference: {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
