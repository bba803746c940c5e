#!/usr/bin/python3
"""Reference check of the SAELens 6 architectures' training steps against independent PyTorch code.

Written from the published definitions, with autograd and float64 dense tensors:
  batchtopk            Bussmann et al. 2024 (arXiv:2412.06410) as SAELens 6's batchtopk_sae.py:
                       keep the k*B largest relu(h) of the batch, AuxK on dead latents without
                       b_dec, running threshold = EMA of the smallest kept activation;
  matryoshka_batchtopk Bussmann et al. 2025 (arXiv:2503.17547) as matryoshka_batchtopk_sae.py:
                       plus one MSE per prefix width;
  jumprelu             Rajamanoharan et al. 2024 (arXiv:2407.14435) as jumprelu_sae.py:
                       rectangle-kernel straight-through estimators, L0 (step) or tanh penalty,
                       pre-activation loss on dead latents, threshold projected onto >= 0;
  gated                Rajamanoharan et al. 2024 (arXiv:2404.16014): gate and magnitude paths
                       sharing W_enc, L1 on relu(pi_gate) weighted by decoder norms, auxiliary
                       reconstruction through the frozen decoder.
The training loop is the project's (docs/definitions.md): decoder rows normalised before each step,
the gradient parallel to each row removed, torch.optim.Adam; a latent is dead after more than
dead_feature_window steps without firing. On fixed weights and batches it compares loss terms,
the gradients Adam applies and the parameters after several steps with `sae_step_harness`
(float32), within 1e-5 relative.
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

NAMES = {
    "batchtopk": ["W_enc", "b_enc", "W_dec", "b_dec"],
    "matryoshka_batchtopk": ["W_enc", "b_enc", "W_dec", "b_dec"],
    "jumprelu": ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"],
    "gated": ["W_enc", "W_dec", "b_dec", "r_mag", "b_gate", "b_mag"],
}
# Positions in the harness's step{i}.loss vector.
LOSS = dict(overall=0, mse=1, l1=2, aux=4, l0=5, explained_variance=6, l0_loss=7, pre_act_loss=8,
            inner_mse_loss=9, topk_threshold=10)


def rectangle(x):
    return ((x > -0.5) & (x < 0.5)).to(x)


class JumpReLUFn(torch.autograd.Function):
    """f = x * 1[x > t]; d/dx = 1[x > t] (+ the estimator when ste_to_input); d/dt = -(t/bw) K."""

    @staticmethod
    def forward(ctx, x, t, bw, to_input):
        ctx.save_for_backward(x, t)
        ctx.bw, ctx.to_input = bw, to_input
        return x * (x > t).to(x)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        ste = (t / ctx.bw) * rectangle((x - t) / ctx.bw) * g
        gx = (x > t).to(x) * g + (ste if ctx.to_input else 0)
        return gx, -ste.sum(0), None, None


class StepFn(torch.autograd.Function):
    """H(x - t); d/dt = -(1/bw) K((x - t)/bw) (and d/dx the opposite when ste_to_input)."""

    @staticmethod
    def forward(ctx, x, t, bw, to_input):
        ctx.save_for_backward(x, t)
        ctx.bw, ctx.to_input = bw, to_input
        return (x > t).to(x)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        ste = (1.0 / ctx.bw) * rectangle((x - t) / ctx.bw) * g
        return (ste if ctx.to_input else None), -ste.sum(0), None, None


def auxk(x, x_hat, h, dead, W_dec, norm, coefficient):
    n_dead = int(dead.sum())
    if n_dead == 0:
        return torch.zeros((), dtype=x.dtype)
    residual = (x - x_hat).detach()
    k_aux = x.shape[-1] // 2
    scale = min(n_dead / k_aux, 1.0)
    k_aux = min(k_aux, n_dead)
    latents = torch.where(dead[None], h, torch.tensor(-math.inf, dtype=h.dtype))
    top = latents.topk(k_aux, dim=-1)
    acts = torch.zeros_like(h).scatter(-1, top.indices, top.values)
    recons = (acts / norm) @ W_dec
    return coefficient * scale * (recons - residual).pow(2).sum(-1).mean()


def sae_input(x, b_dec, o):
    """SAELens 6's process_sae_in: x - b_dec when apply_b_dec_to_input (the default), else x."""
    return x - b_dec if o.get("apply_b_dec_to_input", True) else x


def batchtopk_loss(p, x, dead, o, state):
    W_enc, b_enc, W_dec, b_dec = (p[n] for n in NAMES["batchtopk"])
    norm = W_dec.norm(dim=-1)  # rescale_acts_by_decoder_norm, as SAELens 6 trains (TopK default)
    h = (sae_input(x, b_dec, o) @ W_enc + b_enc) * norm
    acts = h.relu().flatten()
    top = acts.topk(o["k"] * x.shape[0])
    f = torch.zeros_like(acts).scatter(-1, top.indices, top.values).reshape(h.shape)
    x_hat = (f / norm) @ W_dec + b_dec
    mse = (x_hat - x).pow(2).sum(-1).mean()
    inner = torch.zeros((), dtype=x.dtype)
    if o["architecture"] == "matryoshka_batchtopk":
        decoded, prev = b_dec, 0
        for w in o["matryoshka_widths"][:-1]:
            decoded = (f[:, prev:w] / norm[prev:w]) @ W_dec[prev:w] + decoded
            inner = inner + (decoded - x).pow(2).sum(-1).mean()
            prev = w
    aux = auxk(x, x_hat, h, dead, W_dec, norm, o["aux_k_coefficient"])
    with torch.no_grad():
        positive = f[f > 0]
        if positive.numel() > 0:
            lr = o["topk_threshold_lr"]
            state["topk_threshold"] = (1 - lr) * state["topk_threshold"] + lr * float(positive.min())
    loss = mse + inner + aux
    terms = dict(overall=loss, mse=mse, l1=f.sum(-1).mean(), aux=aux, inner_mse_loss=inner)
    return loss, terms, f, x_hat


def jumprelu_loss(p, x, dead, o, step):
    W_enc, b_enc, W_dec, b_dec, t = (p[n] for n in NAMES["jumprelu"])
    bw, to_input = o["jumprelu_bandwidth"], o.get("jumprelu_ste_to_input", False)
    h = sae_input(x, b_dec, o) @ W_enc + b_enc
    f = JumpReLUFn.apply(h, t, bw, to_input)
    x_hat = f @ W_dec + b_dec
    mse = (x_hat - x).pow(2).sum(-1).mean()
    warm = o.get("l0_warm_up_steps", 0)
    c = o["l0_coefficient"] * (min(1.0, step / warm) if warm > 0 else 1.0)
    norm = W_dec.norm(dim=1)
    mode = o.get("jumprelu_sparsity_loss_mode", "step")
    if mode == "step":
        l0_loss = (c * StepFn.apply(h, t, bw, to_input).sum(-1)).mean()
    elif mode == "quadratic":  # Gemma Scope 2: 2 / T * (L0 - T)^2 per token
        l0 = StepFn.apply(h, t, bw, to_input).sum(-1)
        target = o["target_l0"]
        l0_loss = (c * 2 / target * (l0 - target) ** 2).mean()
    else:
        l0_loss = (c * torch.tanh(o["jumprelu_tanh_scale"] * f * norm).sum(-1)).mean()
    pre_act = torch.zeros((), dtype=x.dtype)
    if "pre_act_loss_coefficient" in o and bool(dead.any()):
        pre_act = o["pre_act_loss_coefficient"] * ((t - h).relu() * dead * norm).sum(-1).mean()
    loss = mse + l0_loss + pre_act
    terms = dict(overall=loss, mse=mse, l1=f.abs().sum(-1).mean(), l0_loss=l0_loss, pre_act_loss=pre_act)
    return loss, terms, f, x_hat


def gated_loss(p, x, o, step):
    W_enc, W_dec, b_dec, r_mag, b_gate, b_mag = (p[n] for n in NAMES["gated"])
    sae_in = sae_input(x, b_dec, o)
    pi_gate = sae_in @ W_enc + b_gate
    pi_mag = sae_in @ (W_enc * r_mag.exp()) + b_mag
    f = (pi_gate > 0).to(x) * pi_mag.relu()
    x_hat = f @ W_dec + b_dec
    mse = (x_hat - x).pow(2).sum(-1).mean()
    gate = pi_gate.relu()
    l1 = (gate * W_dec.norm(dim=1)).sum(-1).mean()
    via_gate = gate @ W_dec.detach() + b_dec.detach()  # the frozen decoder of the paper
    aux = (via_gate - x).pow(2).sum(-1).mean()
    loss = mse + o["l1_coefficient"] * l1 + aux
    return loss, dict(overall=loss, mse=mse, l1=l1, aux=aux), f, x_hat


def reference_run(init, batches, o):
    names = NAMES[o["architecture"]]
    params = {n: init[n].double().clone().requires_grad_(True) for n in names}
    opt = torch.optim.Adam([params[n] for n in names], lr=o["lr"])
    d_sae = params["W_dec"].shape[0]
    passes = torch.zeros(d_sae, dtype=torch.long)
    state = dict(topk_threshold=0.0)
    out = []
    for s in range(batches.shape[0]):
        x = batches[s].double()
        with torch.no_grad():
            params["W_dec"].data /= params["W_dec"].data.norm(dim=1, keepdim=True)
            if "threshold" in params:
                params["threshold"].data.clamp_(min=0.0)
        opt.zero_grad()
        dead = passes > o["dead_feature_window"]
        arch = o["architecture"]
        if arch in ("batchtopk", "matryoshka_batchtopk"):
            loss, terms, f, x_hat = batchtopk_loss(params, x, dead, o, state)
        elif arch == "jumprelu":
            loss, terms, f, x_hat = jumprelu_loss(params, x, dead, o, s)
        else:
            loss, terms, f, x_hat = gated_loss(params, x, o, s)
        passes += 1
        passes[(f != 0).sum(0) > 0] = 0
        loss.backward()
        with torch.no_grad():
            W_dec = params["W_dec"]
            W_dec.grad -= (W_dec.grad * W_dec.data).sum(-1, keepdim=True) * W_dec.data
            variance = (x - x.mean(0)).pow(2).sum(-1)
            terms["explained_variance"] = (1 - (x - x_hat).pow(2).sum(-1) / variance).mean()
            terms["l0"] = (f != 0).to(x).sum(-1).mean()
        grads = {n: params[n].grad.detach().clone() for n in names}
        opt.step()
        terms = {k: float(v) for k, v in terms.items()}
        terms["topk_threshold"] = state["topk_threshold"]
        out.append(dict(terms=terms, grads=grads, dead=int(dead.sum())))
    return out, {n: params[n].detach() for n in names}, state


def rel(a, b):
    a, b = a.double(), b.double()
    return (a - b).norm().item() / max(b.norm().item(), 1e-12)


def check_case(harness, tmp, name, o, init, batches, failures, expect_dead, tol=1e-5):
    path_in = os.path.join(tmp, f"{name}_in.safetensors")
    path_out = os.path.join(tmp, f"{name}_out.safetensors")
    safetensors_py.save(path_in, dict(init, batches=batches), {"options": json.dumps(o)})
    subprocess.run([harness, path_in, path_out], check=True)
    ours = safetensors_py.load(path_out)
    ref, final, state = reference_run(init, batches, o)
    dead_steps = 0
    for s, r in enumerate(ref):
        terms = ours[f"step{s}.loss"]
        for label, value in r["terms"].items():
            a = float(terms[LOSS[label]])
            # Explained variance is 1 - ratio, near 0 here: float32 gets it to ~1e-7 absolute.
            floor = 0.1 if label == "explained_variance" else 1e-3
            if abs(a - value) > tol * max(abs(value), floor):
                failures.append(f"{name} step {s} {label}: ours {a:.8g} reference {value:.8g}")
        if int(ours[f"step{s}.dead"][0]) != r["dead"]:
            failures.append(f"{name} step {s}: {int(ours[f'step{s}.dead'][0])} dead, reference {r['dead']}")
        dead_steps += r["dead"] > 0
        for n, g in r["grads"].items():
            e = rel(ours[f"step{s}.grad.{n}"], g)
            if e > tol:
                failures.append(f"{name} step {s} grad {n}: relative error {e:.3g}")
    for n, t in final.items():
        e = rel(ours[f"final.{n}"], t)
        if e > tol:
            failures.append(f"{name} final {n}: relative error {e:.3g}")
    if o["architecture"] in ("batchtopk", "matryoshka_batchtopk"):
        a, b = float(ours["final.topk_threshold"][0]), state["topk_threshold"]
        if b <= 0 or abs(a - b) > tol * abs(b):
            failures.append(f"{name} running threshold: ours {a:.8g} reference {b:.8g}")
    print(f"{name}: {len(ref)} steps, {dead_steps} with dead latents")
    if expect_dead and dead_steps == 0:
        failures.append(f"{name}: no latent was ever dead; the dead-latent loss is untested")


def make_init(arch, d_in, d_sae, g, silenced):
    W_dec = torch.empty(d_sae, d_in).uniform_(-1, 1, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.t().clone() + torch.randn(d_in, d_sae, generator=g) * 0.05
    b_dec = torch.randn(d_in, generator=g) * 0.1
    bias = torch.randn(d_sae, generator=g) * 0.05
    bias[:silenced] = -20.0  # these latents never fire, so the dead-latent losses run
    init = dict(W_enc=W_enc, W_dec=W_dec, b_dec=b_dec)
    if arch == "gated":
        init.update(b_gate=bias, b_mag=torch.randn(d_sae, generator=g) * 0.05,
                    r_mag=torch.randn(d_sae, generator=g) * 0.1)
    else:
        init["b_enc"] = bias
    if arch == "jumprelu":
        # Thresholds spread around the pre-activations so the estimators' windows catch some.
        init["threshold"] = torch.rand(d_sae, generator=g) * 0.8
    return init


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    failures = []
    g = torch.Generator().manual_seed(3)
    d_in, d_sae, B, steps = 16, 64, 32, 6
    batches = torch.randn(steps, B, d_in, generator=g) * 2 + 0.5
    common = dict(lr=1e-3, lr_scheduler_name="constant", lr_warm_up_steps=0, total_steps=steps,
                  l1_coefficient=0.0, dead_feature_window=1)
    cases = [
        ("batchtopk", dict(common, architecture="batchtopk", k=4, aux_k_coefficient=0.5,
                           topk_threshold_lr=0.1), 8),
        ("matryoshka_batchtopk", dict(common, architecture="matryoshka_batchtopk", k=4,
                                      aux_k_coefficient=0.5, topk_threshold_lr=0.1,
                                      matryoshka_widths=[8, 24, 64]), 8),
        ("jumprelu_step", dict(common, architecture="jumprelu", jumprelu_bandwidth=0.5,
                               l0_coefficient=0.05, l0_warm_up_steps=3,
                               pre_act_loss_coefficient=0.01), 8),
        ("jumprelu_tanh_ste", dict(common, architecture="jumprelu", jumprelu_bandwidth=0.5,
                                   jumprelu_sparsity_loss_mode="tanh", jumprelu_tanh_scale=4.0,
                                   jumprelu_ste_to_input=True, l0_coefficient=0.05,
                                   pre_act_loss_coefficient=0.01), 8),
        ("gated", dict(common, architecture="gated", l1_coefficient=0.02), 0),
        ("jumprelu_quadratic", dict(common, architecture="jumprelu", jumprelu_bandwidth=0.5,
                                    jumprelu_sparsity_loss_mode="quadratic", target_l0=5.0,
                                    jumprelu_ste_to_input=True, l0_coefficient=0.05), 8),
        # apply_b_dec_to_input false: the encoder reads x itself.
        ("batchtopk_x_in", dict(common, architecture="batchtopk", k=4, aux_k_coefficient=0.5,
                                topk_threshold_lr=0.1, apply_b_dec_to_input=False), 8),
        ("jumprelu_x_in", dict(common, architecture="jumprelu", jumprelu_bandwidth=0.5,
                               l0_coefficient=0.05, pre_act_loss_coefficient=0.01,
                               apply_b_dec_to_input=False), 8),
        ("gated_x_in", dict(common, architecture="gated", l1_coefficient=0.02,
                            apply_b_dec_to_input=False), 0),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, o, silenced in cases:
            init = make_init(o["architecture"], d_in, d_sae, g, silenced)
            check_case(args.harness, tmp, name, o, init, batches, failures, expect_dead=silenced > 0)
    for f in failures:
        print("MISMATCH", f)
    print(f"sae architectures reference: {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
