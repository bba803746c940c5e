#!/usr/bin/python3
"""Reference check of the GPT-2 engine against an independent PyTorch GPT-2.

The GPT-2 below is written from Hugging Face's modeling_gpt2 definitions (Conv1D [in,out],
LayerNorm, causal softmax attention scaled by 1/sqrt(d_head), gelu_new), in float64. The test
writes random weights in Hugging Face layout (every bias and LayerNorm parameter random, so that
weight processing has work to do), runs `saectl model activations` for every hook, and checks:
  * processing "none": every TransformerLens hook and the logits agree within 1e-4;
  * processing "transformer_lens": the relations TransformerLens's weight processing implies
    (residual-stream hooks centred over d_model, hook_v/hook_z without the folded b_V, reading
    hooks unchanged, log-probabilities equal).
Exit status 0 on success; every disagreement is printed.
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

N_LAYER, D, H, VOCAB, N_CTX = 3, 64, 4, 50257, 64
DH = D // H
EPS = 1e-5


def random_weights(seed):
    g = torch.Generator().manual_seed(seed)
    def n(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std
    w = {"wte.weight": n(VOCAB, D), "wpe.weight": n(N_CTX, D, std=0.05)}
    for l in range(N_LAYER):
        p = f"h.{l}."
        w[p + "ln_1.weight"] = 1 + n(D, std=0.2)
        w[p + "ln_1.bias"] = n(D, std=0.1)
        w[p + "attn.c_attn.weight"] = n(D, 3 * D, std=0.2)
        w[p + "attn.c_attn.bias"] = n(3 * D, std=0.1)
        w[p + "attn.c_proj.weight"] = n(D, D, std=0.05)
        w[p + "attn.c_proj.bias"] = n(D, std=0.1)
        w[p + "ln_2.weight"] = 1 + n(D, std=0.2)
        w[p + "ln_2.bias"] = n(D, std=0.1)
        w[p + "mlp.c_fc.weight"] = n(D, 4 * D, std=0.1)
        w[p + "mlp.c_fc.bias"] = n(4 * D, std=0.1)
        w[p + "mlp.c_proj.weight"] = n(4 * D, D, std=0.05)
        w[p + "mlp.c_proj.bias"] = n(D, std=0.1)
        # Old checkpoints carry these mask buffers; the loader must ignore them.
        w[p + "attn.bias"] = torch.tril(torch.ones(1, 1, N_CTX, N_CTX))
    w["ln_f.weight"] = 1 + n(D, std=0.2)
    w["ln_f.bias"] = n(D, std=0.1)
    return w


def layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    scale = torch.sqrt(var + EPS)
    return scale, (x - mean) / scale


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def reference_forward(w, tokens):
    """Hugging Face GPT-2 in float64, recording the TransformerLens hook values."""
    w = {k: v.double() for k, v in w.items()}
    B, T = tokens.shape
    hooks = {}
    embed = w["wte.weight"][tokens]
    pos = w["wpe.weight"][:T].unsqueeze(0).expand(B, T, D)
    hooks["hook_embed"], hooks["hook_pos_embed"] = embed, pos
    resid = embed + pos
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(N_LAYER):
        p, b = f"h.{l}.", f"blocks.{l}."
        hooks[b + "hook_resid_pre"] = resid
        scale, normed = layer_norm(resid)
        hooks[b + "ln1.hook_scale"], hooks[b + "ln1.hook_normalized"] = scale, normed
        x = normed * w[p + "ln_1.weight"] + w[p + "ln_1.bias"]
        qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(B, T, H, DH) for t in qkv.split(D, dim=-1))
        hooks[b + "attn.hook_q"], hooks[b + "attn.hook_k"], hooks[b + "attn.hook_v"] = q, k, v
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(DH)
        scores = scores.masked_fill(mask, float("-inf"))
        hooks[b + "attn.hook_attn_scores"] = scores
        pattern = torch.softmax(scores, dim=-1)
        hooks[b + "attn.hook_pattern"] = pattern
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        hooks[b + "attn.hook_z"] = z
        attn_out = z.reshape(B, T, D) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        hooks[b + "hook_attn_out"] = attn_out
        resid = resid + attn_out
        hooks[b + "hook_resid_mid"] = resid
        scale, normed = layer_norm(resid)
        hooks[b + "ln2.hook_scale"], hooks[b + "ln2.hook_normalized"] = scale, normed
        x = normed * w[p + "ln_2.weight"] + w[p + "ln_2.bias"]
        pre = x @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
        post = gelu_new(pre)
        hooks[b + "mlp.hook_pre"], hooks[b + "mlp.hook_post"] = pre, post
        mlp_out = post @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        hooks[b + "hook_mlp_out"] = mlp_out
        resid = resid + mlp_out
        hooks[b + "hook_resid_post"] = resid
    scale, normed = layer_norm(resid)
    hooks["ln_final.hook_scale"], hooks["ln_final.hook_normalized"] = scale, normed
    x = normed * w["ln_f.weight"] + w["ln_f.bias"]
    logits = x @ w["wte.weight"].T
    return hooks, logits


def all_hook_names():
    names = ["hook_embed", "hook_pos_embed"]
    for l in range(N_LAYER):
        b = f"blocks.{l}."
        names += [b + s for s in [
            "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k",
            "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
            "hook_attn_out", "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized",
            "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


class Checker:
    def __init__(self):
        self.failures = []
        self.checked = 0

    def close(self, label, ours, ref, tol=1e-4):
        self.checked += 1
        ours, ref = ours.double(), ref.double()
        if ours.shape != ref.shape:
            self.failures.append(f"{label}: shape {tuple(ours.shape)} != reference {tuple(ref.shape)}")
            return
        finite = torch.isfinite(ref)
        if not torch.equal(finite, torch.isfinite(ours)):
            self.failures.append(f"{label}: infinite entries differ from the reference")
            return
        diff = (ours[finite] - ref[finite]).abs()
        bound = tol * (1 + ref[finite].abs())
        if diff.numel() and not bool((diff <= bound).all()):
            self.failures.append(f"{label}: max |diff| {diff.max().item():.3g} exceeds {tol} (relative)")


def run_saectl(saectl, model_dir, tokens, processing, out):
    cmd = [saectl, "model", "activations", "--model", model_dir, "--tokens",
           ",".join(str(t) for t in tokens), "--processing", processing, "--logits", "--out", out]
    for name in all_hook_names():
        cmd += ["--hook", name]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return safetensors_py.load(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    check = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_weights(1234)
        config = {"model_type": "gpt2", "n_layer": N_LAYER, "n_embd": D, "n_head": H,
                  "vocab_size": VOCAB, "n_positions": N_CTX, "n_ctx": N_CTX,
                  "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f)
        safetensors_py.save(os.path.join(tmp, "model.safetensors"), weights, {"format": "pt"})
        tokens = [50256, 464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256, 40, 1101,
                  8066, 1110, 257, 1332, 286, 262]
        ref_hooks, ref_logits = reference_forward(weights, torch.tensor([tokens]))

        raw = run_saectl(args.saectl, tmp, tokens, "none", os.path.join(tmp, "none.safetensors"))
        for name in all_hook_names():
            check.close(f"none/{name}", raw[name], ref_hooks[name])
        check.close("none/logits", raw["logits"], ref_logits)

        tl = run_saectl(args.saectl, tmp, tokens, "transformer_lens", os.path.join(tmp, "tl.safetensors"))
        for name in all_hook_names():
            r = ref_hooks[name]
            if any(name.endswith(s) for s in ["hook_embed", "hook_pos_embed", "hook_resid_pre",
                                               "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                                               "hook_mlp_out"]):
                check.close(f"transformer_lens/{name} (centred)", tl[name], r - r.mean(-1, keepdim=True))
            elif name.endswith("attn.hook_v") or name.endswith("attn.hook_z"):
                l = int(name.split(".")[1])
                p = f"h.{l}."
                w_v = weights[p + "attn.c_attn.weight"].double()[:, 2 * D:]
                b_v = weights[p + "attn.c_attn.bias"].double()[2 * D:] + weights[p + "ln_1.bias"].double() @ w_v
                check.close(f"transformer_lens/{name} (without b_V)", tl[name], r - b_v.reshape(H, DH))
            else:
                check.close(f"transformer_lens/{name} (unchanged)", tl[name], r)
        check.close("transformer_lens/log_probs", torch.log_softmax(tl["logits"].double(), -1),
                    torch.log_softmax(ref_logits, -1))
    for f in check.failures:
        print("MISMATCH", f)
    print(f"gpt2 reference: {check.checked} comparisons, {len(check.failures)} mismatches")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
