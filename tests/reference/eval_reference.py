#!/usr/bin/python3
"""Reference check of `saectl eval` against an independent PyTorch evaluation.

The GPT-2 is gpt2_reference.py's float64 model written from Hugging Face's modeling_gpt2
(random weights, every bias and LayerNorm parameter random), extended here with interventions
at a hook. The metrics are computed from their definitions in docs/evals.md, in float64:
  CE     mean over positions 0..T-2 of -log p(next token)
  KL     mean over positions 0..T-1 of KL(clean || spliced / ablated)
  scores ratios of those means; reconstruction and sparsity statistics pooled over tokens.

TransformerLens's weight processing is reproduced from its definition rather than from the
engine: residual-stream hooks are centred over d_model (fold_ln + center_writing_weights), and
every later reader of the residual stream is a LayerNorm, so a value spliced there in processed
space gives the logits of the same value spliced into the raw model; hook_z loses the folded
value bias b_V = b_v + ln_1.bias W_v (fold_value_biases), so processed z = raw z - b_V and a
processed value x_hat is the raw value x_hat + b_V (zero-ablation in processed space leaves b_V).

Cases: a standard SAE on a residual hook, a standard SAE on one head of hook_z
(hook_head_index, nested SAELens 6 cfg.json), a TopK SAE on all heads of hook_z, each with both
processings; every metric within 1e-4 relative. `--held-out-fraction`: the contexts are the
first rows the held-out rule of docs/data.md draws (computed here from its definition,
splitmix64 of the row index), and the metrics agree with the reference on those rows. Then the
errors: exit 2, nothing written.
Exit status 0 on success; every disagreement is printed.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402
from gpt2_reference import (D, DH, EPS, H, N_CTX, N_LAYER, VOCAB, gelu_new,  # noqa: E402
                            layer_norm, random_weights)

CONTEXT = 16
ROW = 20  # rows of the .npy are longer than the context: truncated, as training does
N_BATCHES, BATCH = 3, 2
RESIDUAL = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")


def forward(w, tokens, hook_name=None, fn=None):
    """Logits [B,T,V] of the raw float64 GPT-2; `fn` replaces the value of `hook_name`."""
    B, T = tokens.shape

    def hook(name, value):
        return fn(value) if name == hook_name else value

    resid = w["wte.weight"][tokens] + w["wpe.weight"][:T].unsqueeze(0)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(N_LAYER):
        p, b = f"h.{l}.", f"blocks.{l}."
        resid = hook(b + "hook_resid_pre", resid)
        x = layer_norm(resid)[1] * w[p + "ln_1.weight"] + w[p + "ln_1.bias"]
        qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(B, T, H, DH) for t in qkv.split(D, dim=-1))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(DH)
        pattern = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        z = hook(b + "attn.hook_z", torch.einsum("bhqk,bkhd->bqhd", pattern, v))
        attn_out = hook(b + "hook_attn_out",
                        z.reshape(B, T, D) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
        resid = hook(b + "hook_resid_mid", resid + attn_out)
        x = layer_norm(resid)[1] * w[p + "ln_2.weight"] + w[p + "ln_2.bias"]
        post = gelu_new(x @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        mlp_out = hook(b + "hook_mlp_out", post @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        resid = hook(b + "hook_resid_post", resid + mlp_out)
    x = layer_norm(resid)[1] * w["ln_f.weight"] + w["ln_f.bias"]
    return x @ w["wte.weight"].T


class Space:
    """Maps a raw hook value to the SAE's input space (processing) and back."""

    def __init__(self, w, hook_name, processing):
        self.kind = hook_name.split(".")[-1]
        self.shift = None
        if processing == "transformer_lens" and self.kind == "hook_z":
            l = int(hook_name.split(".")[1])
            p = f"h.{l}."
            w_v = w[p + "attn.c_attn.weight"][:, 2 * D:]
            self.shift = (w[p + "attn.c_attn.bias"][2 * D:] + w[p + "ln_1.bias"] @ w_v).reshape(H, DH)
        self.centre = processing == "transformer_lens" and self.kind in RESIDUAL

    def to_processed(self, raw):
        if self.centre:
            return raw - raw.mean(-1, keepdim=True)
        return raw - self.shift if self.shift is not None else raw

    def to_raw(self, processed):
        # Residual hooks: every reader is a LayerNorm, so the processed value itself is exact.
        return processed + self.shift if self.shift is not None else processed


def sae_forward(sae, x):
    pre = (x - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"]
    if sae["k"]:
        top = torch.topk(pre, sae["k"], dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    else:
        f = torch.relu(pre)
    return f, f @ sae["W_dec"] + sae["b_dec"]


def reference_metrics(w, sae, contexts, processing):
    head = sae["head"]
    space = Space(w, sae["hook"], processing)
    per_head = space.kind == "hook_z"
    sums = {k: 0.0 for k in ["ce_clean", "ce_sae", "ce_abl", "kl_sae", "kl_abl", "se", "cos",
                             "n_in", "n_out", "ratio", "out_sq", "dot", "l0", "l1", "in_sq"]}
    x_sum = 0
    fired = torch.zeros(sae["W_enc"].shape[1], dtype=torch.float64)
    tokens_total = 0
    for b in range(N_BATCHES):
        tokens = contexts[b * BATCH:(b + 1) * BATCH]
        stats = {}

        def splice(raw):
            value = space.to_processed(raw)
            if per_head and head is not None:
                x = value[:, :, head].reshape(-1, DH)
            else:
                x = value.reshape(-1, sae["W_enc"].shape[0])
            f, x_hat = sae_forward(sae, x)
            stats["x"], stats["x_hat"], stats["f"] = x, x_hat, f
            out = value.clone()
            if per_head and head is not None:
                out[:, :, head] = x_hat.reshape(out.shape[0], out.shape[1], DH)
            else:
                out = x_hat.reshape(value.shape)
            return space.to_raw(out)

        def ablate(raw):
            value = space.to_processed(raw).clone()
            if per_head and head is not None:
                value[:, :, head] = 0
            else:
                value = torch.zeros_like(value)
            return space.to_raw(value)

        clean = torch.log_softmax(forward(w, tokens), -1)
        spliced = torch.log_softmax(forward(w, tokens, sae["hook"], splice), -1)
        ablated = torch.log_softmax(forward(w, tokens, sae["hook"], ablate), -1)
        nxt = tokens[:, 1:].unsqueeze(-1)
        for key, lp in [("ce_clean", clean), ("ce_sae", spliced), ("ce_abl", ablated)]:
            sums[key] += -lp[:, :-1].gather(-1, nxt).sum().item()
        p = clean.exp()
        sums["kl_sae"] += (p * (clean - spliced)).sum().item()
        sums["kl_abl"] += (p * (clean - ablated)).sum().item()

        x, x_hat, f = stats["x"], stats["x_hat"], stats["f"]
        n_in, n_out = x.norm(dim=-1), x_hat.norm(dim=-1)
        dot = (x * x_hat).sum(-1)
        sums["se"] += ((x - x_hat) ** 2).sum().item()
        sums["in_sq"] += (x ** 2).sum().item()
        x_sum = x_sum + x.sum(0)
        sums["cos"] += (dot / (n_in * n_out)).sum().item()
        sums["n_in"] += n_in.sum().item()
        sums["n_out"] += n_out.sum().item()
        sums["ratio"] += (n_out / n_in).sum().item()
        sums["out_sq"] += (n_out ** 2).sum().item()
        sums["dot"] += dot.sum().item()
        sums["l0"] += (f > 0).sum().item()
        sums["l1"] += f.abs().sum().item()
        fired += (f > 0).double().sum(0)
        tokens_total += x.shape[0]

    n_ce = N_BATCHES * BATCH * (CONTEXT - 1)
    n_kl = N_BATCHES * BATCH * CONTEXT
    n = tokens_total
    ce = {k: sums[k] / n_ce for k in ["ce_clean", "ce_sae", "ce_abl"]}
    kl_sae, kl_abl = sums["kl_sae"] / n_kl, sums["kl_abl"] / n_kl
    d_in = sae["W_enc"].shape[0]
    centred = sums["in_sq"] - (x_sum ** 2).sum().item() / n
    density = fired / n
    return {
        "model_performance_preservation": {
            "ce_loss_without_sae": ce["ce_clean"], "ce_loss_with_sae": ce["ce_sae"],
            "ce_loss_with_ablation": ce["ce_abl"],
            "ce_loss_score": (ce["ce_abl"] - ce["ce_sae"]) / (ce["ce_abl"] - ce["ce_clean"])},
        "model_behavior_preservation": {
            "kl_div_with_sae": kl_sae, "kl_div_with_ablation": kl_abl,
            "kl_div_score": (kl_abl - kl_sae) / kl_abl},
        "reconstruction_quality": {
            "mse": sums["se"] / (n * d_in), "explained_variance": 1 - sums["se"] / centred,
            "cossim": sums["cos"] / n},
        "shrinkage": {
            "l2_norm_in": sums["n_in"] / n, "l2_norm_out": sums["n_out"] / n,
            "l2_ratio": sums["ratio"] / n,
            "relative_reconstruction_bias": sums["out_sq"] / sums["dot"]},
        "sparsity": {
            "l0": sums["l0"] / n, "l1": sums["l1"] / n, "d_sae": int(fired.numel()),
            "dead_features": int((fired == 0).sum().item()),
            "dense_features": int((density > 0.1).sum().item())},
        "token_stats": {
            "contexts": N_BATCHES * BATCH, "context_size": CONTEXT, "ce_loss_positions": n_ce,
            "kl_div_positions": n_kl, "total_tokens_eval_sparsity_variance": n,
            "total_tokens_eval_reconstruction": n_kl},
    }


def random_sae(seed, d_in, extra, k=0):
    """An SAE that reconstructs 0.9 x plus noise: latents [relu(x), relu(-x)] and `extra` random
    ones (the first 3 dead), so that every score is a well-conditioned ratio."""
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(d_in)
    b_enc = torch.randn(extra, generator=g) * 0.2
    b_enc[:3] = -1e3
    sae = {
        "W_enc": torch.cat([eye, -eye, torch.randn(d_in, extra, generator=g) / math.sqrt(d_in)], 1),
        "b_enc": torch.cat([torch.zeros(2 * d_in), b_enc]),
        "W_dec": torch.cat([0.9 * eye, -0.9 * eye, torch.randn(extra, d_in, generator=g) * 0.05]),
        "b_dec": torch.randn(d_in, generator=g) * 0.01,
        "k": k,
    }
    return sae


def write_sae(folder, sae, hook, head, nested):
    os.makedirs(folder)
    tensors = {k: sae[k].float() for k in ["W_enc", "b_enc", "W_dec", "b_dec"]}
    safetensors_py.save(os.path.join(folder, "sae_weights.safetensors"), tensors, {"format": "pt"})
    meta = {"hook_name": hook, "hook_head_index": head, "context_size": CONTEXT,
            "prepend_bos": True, "model_name": "gpt2",
            "model_from_pretrained_kwargs": {"fold_ln": True, "center_writing_weights": True,
                                             "center_unembed": True, "fold_value_biases": True}}
    cfg = {"d_in": sae["W_enc"].shape[0], "d_sae": sae["W_enc"].shape[1],
           "architecture": "topk" if sae["k"] else "standard", "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none"}
    if sae["k"]:
        cfg["k"] = sae["k"]
    if nested:
        cfg["metadata"] = meta
    else:
        cfg.update(meta)
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    # The evaluation reads float32 parameters: the reference uses exactly those values.
    return {**{k: v.double() for k, v in tensors.items()}, "k": sae["k"], "hook": hook, "head": head}


def compare(label, ours, ref, failures, tol=1e-4):
    count = 0
    for group, metrics in ref.items():
        for name, r in metrics.items():
            count += 1
            o = ours.get(group, {}).get(name)
            if o is None:
                failures.append(f"{label}: {group}.{name} missing")
            elif isinstance(r, int):
                if o != r:
                    failures.append(f"{label}: {group}.{name} = {o}, reference {r}")
            elif abs(o - r) > tol * abs(r) + 1e-9:
                failures.append(f"{label}: {group}.{name} = {o!r}, reference {r!r} "
                                f"(rel {abs(o - r) / max(abs(r), 1e-300):.2g})")
    return count


def run_eval(saectl, sae_dir, model_dir, data, processing, extra=("-o", "json")):
    cmd = [saectl, "eval", sae_dir, "--model", model_dir, "--dataset", data,
           "--n-eval-batches", str(N_BATCHES), "--eval-batch-size-prompts", str(BATCH),
           "--processing", processing, "--threads", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def splitmix64(unit):
    """The (unit + 1)-th output of splitmix64 seeded with 0 (docs/data.md, held-out documents)."""
    mask = (1 << 64) - 1
    z = ((unit + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def check_held_out(saectl, tmp, w, folder, ref_sae, model_dir, failures):
    """`--held-out-fraction F` evaluates the first rows whose index draws below F x 2^64."""
    fraction = 0.2
    g = torch.Generator().manual_seed(78)
    rows = torch.randint(0, VOCAB, (120, ROW), generator=g, dtype=torch.int64)
    rows[:, 0] = 50256
    data = os.path.join(tmp, "many_rows.npy")
    np.save(data, rows.numpy().astype("<i4"))
    threshold = int(fraction * 2**64)  # exact: a power-of-two scaling of the double
    held = [i for i in range(rows.shape[0]) if splitmix64(i) < threshold]
    count = N_BATCHES * BATCH
    if len(held) < count or held[:count] == list(range(count)):
        failures.append(f"held-out: the rule drew {held}; the check needs a spread of rows")
        return 0
    r = run_eval(saectl, folder, model_dir, data, "none",
                 ("-o", "json", "--held-out-fraction", str(fraction)))
    if r.returncode != 0:
        failures.append(f"held-out: saectl eval failed: {r.stderr.strip()}")
        return 0
    ref = reference_metrics(w, ref_sae, rows[held[:count], :CONTEXT], "none")
    print(f"held-out rows {held[:count]}: ce_loss_score "
          f"{ref['model_performance_preservation']['ce_loss_score']:.4f}")
    return compare("held-out", json.loads(r.stdout), ref, failures)


def check_errors(saectl, tmp, model_dir, data, failures):
    """A user's mistake: exit 2, one line naming both sides, no --out file."""
    out = os.path.join(tmp, "should_not_exist.json")
    wide = write_sae(os.path.join(tmp, "wide"), random_sae(9, D + 8, 8),
                     "blocks.0.hook_resid_pre", None, False)
    deep = write_sae(os.path.join(tmp, "deep"), random_sae(9, D, 8),
                     f"blocks.{N_LAYER + 2}.hook_resid_pre", None, False)
    ok_dir = os.path.join(tmp, "ok")
    write_sae(ok_dir, random_sae(9, D, 8), "blocks.0.hook_resid_pre", None, False)
    del wide, deep
    cases = [
        ("d_in", os.path.join(tmp, "wide"), N_BATCHES, [f"d_in {D + 8}", f"width {D}", model_dir]),
        ("hook", os.path.join(tmp, "deep"), N_BATCHES, [f"blocks.{N_LAYER + 2}.hook_resid_pre",
                                                        f"{N_LAYER} layers"]),
        ("dataset", ok_dir, 50, ["holds 8 contexts", "fewer than the 100", data]),
    ]
    for label, sae_dir, n_batches, needles in cases:
        cmd = [saectl, "eval", sae_dir, "--model", model_dir, "--dataset", data,
               "--n-eval-batches", str(n_batches), "--eval-batch-size-prompts", str(BATCH),
               "--out", out]
        r = subprocess.run(cmd, capture_output=True, text=True)
        message = r.stderr.strip()
        if r.returncode != 2:
            failures.append(f"error/{label}: exit {r.returncode}, expected 2 ({message})")
        for needle in needles:
            if needle not in message:
                failures.append(f"error/{label}: message {message!r} does not name {needle!r}")
        if os.path.exists(out):
            failures.append(f"error/{label}: {out} was written")
        if r.stdout.strip():
            failures.append(f"error/{label}: printed {r.stdout!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_weights(4321)
        # Larger (tied) embeddings than GPT-2's initialisation: sharp next-token distributions,
        # so that splicing and ablating move CE and KL well beyond float32 noise.
        weights["wte.weight"] = weights["wte.weight"] * 20
        model_dir = os.path.join(tmp, "model")
        os.makedirs(model_dir)
        config = {"model_type": "gpt2", "n_layer": N_LAYER, "n_embd": D, "n_head": H,
                  "vocab_size": VOCAB, "n_positions": N_CTX, "n_ctx": N_CTX,
                  "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump(config, f)
        safetensors_py.save(os.path.join(model_dir, "model.safetensors"), weights,
                            {"format": "pt"})
        w = {k: v.double() for k, v in weights.items()}

        g = torch.Generator().manual_seed(77)
        rows = torch.randint(0, VOCAB, (8, ROW), generator=g, dtype=torch.int64)
        rows[:, 0] = 50256
        data = os.path.join(tmp, "rows.npy")
        np.save(data, rows.numpy().astype("<i4"))
        contexts = rows[:, :CONTEXT]

        cases = [
            ("resid_standard", random_sae(1, D, 32), "blocks.1.hook_resid_pre", None, False),
            ("z_head_standard", random_sae(2, DH, 24), "blocks.2.attn.hook_z", 1, True),
            ("z_all_topk", random_sae(3, D, 16, k=70), "blocks.0.attn.hook_z", None, False),
        ]
        ref_saes = {}
        for label, sae, hook, head, nested in cases:
            folder = os.path.join(tmp, label)
            ref_sae = write_sae(folder, sae, hook, head, nested)
            ref_saes[label] = ref_sae
            for processing in ["transformer_lens", "none"]:
                r = run_eval(args.saectl, folder, model_dir, data, processing)
                if r.returncode != 0:
                    failures.append(f"{label}/{processing}: saectl eval failed: {r.stderr.strip()}")
                    continue
                ours = json.loads(r.stdout)
                ref = reference_metrics(w, ref_sae, contexts, processing)
                checked += compare(f"{label}/{processing}", ours, ref, failures)
                print(f"{label}/{processing}: ce_loss_score {ref['model_performance_preservation']['ce_loss_score']:.4f} "
                      f"kl_div_score {ref['model_behavior_preservation']['kl_div_score']:.4f} "
                      f"l0 {ref['sparsity']['l0']:.2f} dead {ref['sparsity']['dead_features']}")
        # The table prints the same groups; --out writes the JSON that -o json prints.
        out = os.path.join(tmp, "eval_results.json")
        folder = os.path.join(tmp, cases[0][0])
        table = run_eval(args.saectl, folder, model_dir, data, "none", ("-o", "table", "--out", out))
        json_run = run_eval(args.saectl, folder, model_dir, data, "none")
        for group in ["model_performance_preservation", "model_behavior_preservation",
                      "reconstruction_quality", "shrinkage", "sparsity", "token_stats"]:
            if group not in table.stdout:
                failures.append(f"table: no group {group}")
        if not os.path.exists(out) or json.load(open(out)) != json.loads(json_run.stdout):
            failures.append("--out did not write what -o json prints")
        checked += check_held_out(args.saectl, tmp, w, folder, ref_saes[cases[0][0]], model_dir,
                                  failures)
        check_errors(args.saectl, tmp, model_dir, data, failures)
    for f in failures:
        print("MISMATCH", f)
    print(f"eval reference: {checked} comparisons, {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
