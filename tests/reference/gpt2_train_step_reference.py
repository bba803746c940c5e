#!/usr/bin/python3
"""Reference check of GPT-2 training steps against PyTorch's own optimiser.

The test writes a small GPT-2 (random weights, every bias and LayerNorm parameter random, the
real 50257-token vocabulary, tied unembedding) and a few batches, runs the C++ step
(`gpt2_train_step_harness`: the training forward with the chunked hand-written unembedding
backward, clipping, AdamW, the warm-up + cosine schedule), and repeats the same steps with
  * the independent Hugging Face GPT-2 forward of gpt2_reference.py under autograd,
  * torch.nn.utils.clip_grad_norm_,
  * torch.optim.AdamW with two parameter groups: weight decay on parameters of 2 or more
    dimensions (embeddings, weight matrices), none on biases and LayerNorm parameters,
  * the learning rate of nanoGPT's schedule, written out below.
Everything runs in float64, so the losses, gradient norms and final parameters must agree to
1e-9. Exit status 0 on success; every disagreement is printed.
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
import gpt2_reference as ref  # noqa: E402
import safetensors_py  # noqa: E402

STEPS, BATCH, T = 4, 2, 12
OPTIONS = {"lr": 3e-2, "min_lr": 3e-3, "warmup_steps": 2, "total_steps": STEPS,
           "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
           "max_grad_norm": 0.5}


def schedule(step):
    """Linear warm-up to lr, then cosine decay to min_lr at the last step (0-based steps)."""
    o = OPTIONS
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    decay_steps = max(1, o["total_steps"] - 1 - o["warmup_steps"])
    progress = min(1.0, (step - o["warmup_steps"]) / decay_steps)
    return o["min_lr"] + 0.5 * (1 + math.cos(math.pi * progress)) * (o["lr"] - o["min_lr"])


def config_json():
    return json.dumps({"model_type": "gpt2", "n_layer": ref.N_LAYER, "n_embd": ref.D,
                       "n_head": ref.H, "n_positions": ref.N_CTX, "vocab_size": ref.VOCAB,
                       "activation_function": "gelu_new", "layer_norm_epsilon": ref.EPS})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)

    weights = {k: v.double() for k, v in ref.random_weights(7).items()
               if k.split(".")[-2:] != ["attn", "bias"]}  # drop the old mask buffers
    g = torch.Generator().manual_seed(8)
    batches = torch.randint(0, ref.VOCAB, (STEPS, BATCH, T), generator=g)

    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        safetensors_py.save(inp, {**weights, "batches": batches},
                            {"config": config_json(), "options": json.dumps(OPTIONS)})
        subprocess.run([args.harness, inp, out], check=True)
        ours = safetensors_py.load(out)

    params = {k: v.clone().requires_grad_() for k, v in weights.items()}
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": OPTIONS["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=OPTIONS["lr"], betas=(OPTIONS["beta1"], OPTIONS["beta2"]), eps=OPTIONS["eps"])

    failures = []

    def close(label, a, b, tol=1e-9):
        err = (a.double() - b.double()).abs().max().item()
        scale = max(1.0, b.double().abs().max().item())
        ok = err <= tol * scale
        print(f"{'ok  ' if ok else 'FAIL'} {label}: max abs diff {err:.3g}")
        if not ok:
            failures.append(label)

    clipped = 0
    for s in range(STEPS):
        tokens = batches[s]
        _, logits = ref.reference_forward(params, tokens)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, ref.VOCAB), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), OPTIONS["max_grad_norm"])
        clipped += norm.item() > OPTIONS["max_grad_norm"]
        for group in optimizer.param_groups:
            group["lr"] = schedule(s)
        optimizer.step()
        close(f"step {s} loss", ours[f"step{s}.loss"], loss.detach().reshape(1))
        close(f"step {s} gradient norm", ours[f"step{s}.grad_norm"], norm.detach().reshape(1))
        close(f"step {s} learning rate", ours[f"step{s}.lr"],
              torch.tensor([schedule(s)], dtype=torch.float64), tol=1e-15)
    if clipped == 0:
        failures.append("no step was clipped: the test does not exercise clipping")
    for name, p in params.items():
        close(f"final {name}", ours[f"final.{name}"], p.detach())
    if failures:
        print(f"{len(failures)} failures: {failures}")
        return 1
    print(f"all {STEPS} steps agree ({clipped} clipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
