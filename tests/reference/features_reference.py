#!/usr/bin/python3
"""Reference check of `saectl features` against an independent PyTorch computation.

The GPT-2 is gpt2_reference.py's float64 model written from Hugging Face's modeling_gpt2
(random weights, every bias and LayerNorm parameter random). The SAE's input is the hook's value
in the space the SAE was trained in (TransformerLens processing: residual hooks centred over
d_model, hook_z without the folded value bias; processing none: the raw value). From the
definitions in docs/features.md, in float64:
  count / frequency   tokens with activation > 0, over all N*T tokens of the pass
  max activation      over all tokens
  top contexts        contexts ranked by their peak activation (contexts that never fire
                      excluded), each with the peak's position and the window's activations
  logit effects       the decoder row carried into the residual stream (hook_z: through that
                      head's rows of W_O; mlp hook_post: through W_out), centred over d_model,
                      times ln_final's weight, times W_U (wte^T), centred over the vocabulary;
                      the 10 largest and 10 smallest
  neighbours          cosine of decoder rows, the feature itself excluded
Interval samples are random (a fixed hash), so for those the check is that every sampled token's
activation lies in its interval and equals the reference's, and that the intervals' counts add up.
The outputs are written with four significant digits: values are compared at 1e-3 relative.

Cases: a standard SAE on blocks.1.hook_resid_pre (transformer_lens, some dead features), a TopK
SAE on head 1 of blocks.2.attn.hook_z (processing none), a standard SAE on blocks.0.mlp.hook_post
(transformer_lens). Then the user's mistakes: exit 2, a message naming both sides, nothing
written. Exit status 0 on success; every disagreement is printed.
"""
import argparse
import glob
import json
import math
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402
from gpt2_reference import (D, DH, EPS, H, N_CTX, N_LAYER, VOCAB, random_weights,  # noqa: E402
                            reference_forward)

CONTEXT = 16
ROW = 20
N_ROWS = 24
TOP = 5
LOGIT_K = 10
WINDOW_BEFORE, WINDOW_AFTER = 10, 5
REL = 1e-3
RESIDUAL = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")


def close(a, b, rel=REL, absolute=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + absolute


def random_sae(seed, d_in, d_sae, k=0, dead=3):
    g = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=g)
    w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
    b_enc = torch.randn(d_sae, generator=g) * 0.3 - 0.2
    b_enc[:dead] = -1e3  # dead features
    return {"W_enc": torch.randn(d_in, d_sae, generator=g) / math.sqrt(d_in), "b_enc": b_enc,
            "W_dec": w_dec, "b_dec": torch.randn(d_in, generator=g) * 0.01, "k": k}


def write_sae(folder, sae, hook, head, processing):
    os.makedirs(folder)
    tensors = {k: sae[k].float() for k in ["W_enc", "b_enc", "W_dec", "b_dec"]}
    safetensors_py.save(os.path.join(folder, "sae_weights.safetensors"), tensors, {"format": "pt"})
    on = processing == "transformer_lens"
    cfg = {"d_in": sae["W_enc"].shape[0], "d_sae": sae["W_enc"].shape[1],
           "architecture": "topk" if sae["k"] else "standard", "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "hook_name": hook, "hook_head_index": head, "context_size": CONTEXT,
           "prepend_bos": True, "model_name": "gpt2",
           "model_from_pretrained_kwargs": {"fold_ln": on, "center_writing_weights": on,
                                            "center_unembed": on, "fold_value_biases": on}}
    if sae["k"]:
        cfg["k"] = sae["k"]
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    return {**{k: v.double() for k, v in tensors.items()}, "k": sae["k"], "hook": hook,
            "head": head, "processing": processing}


def sae_input(w, sae, contexts):
    """The SAE's input [N, T, d_in] in its training space."""
    hooks, _ = reference_forward(w, contexts)
    raw = hooks[sae["hook"]]
    kind = sae["hook"].split(".")[-1]
    on = sae["processing"] == "transformer_lens"
    if kind in RESIDUAL:
        return raw - raw.mean(-1, keepdim=True) if on else raw
    if kind == "hook_z":
        value = raw
        if on:
            l = int(sae["hook"].split(".")[1])
            p = f"h.{l}."
            w_v = w[p + "attn.c_attn.weight"][:, 2 * D:]
            b_v = (w[p + "attn.c_attn.bias"][2 * D:] + w[p + "ln_1.bias"] @ w_v).reshape(H, DH)
            value = raw - b_v
        if sae["head"] is not None:
            return value[:, :, sae["head"]]
        return value.reshape(*value.shape[:2], -1)
    if kind == "hook_post":  # mlp: unchanged by processing (fold_ln moves ln_2 into W_in)
        return raw
    raise ValueError(kind)


def encode(sae, x):
    pre = (x - sae["b_dec"]) @ sae["W_enc"] + sae["b_enc"]
    if sae["k"]:
        top = torch.topk(pre, sae["k"], dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    return torch.relu(pre)


def logit_effects(w, sae):
    r = sae["W_dec"]
    kind = sae["hook"].split(".")[-1]
    l = int(sae["hook"].split(".")[1])
    if kind == "hook_z":
        w_o = w[f"h.{l}.attn.c_proj.weight"]
        if sae["head"] is not None:
            w_o = w_o[sae["head"] * DH:(sae["head"] + 1) * DH]
        r = r @ w_o
    elif kind == "hook_post":
        r = r @ w[f"h.{l}.mlp.c_proj.weight"]
    # TransformerLens's processed unembedding: ln_final's weight folded in, centred over d_model
    # (fold_ln) and over the vocabulary (center_unembed).
    w_u = w["ln_f.weight"].unsqueeze(1) * w["wte.weight"].T
    w_u = w_u - w_u.mean(0, keepdim=True)
    w_u = w_u - w_u.mean(1, keepdim=True)
    return r @ w_u


def check_case(label, ours_path, summary_path, w, sae, contexts, failures):
    records = [json.loads(line) for line in open(ours_path)]
    summary = json.load(open(summary_path))
    d_sae = sae["W_enc"].shape[1]
    N, T = contexts.shape
    acts = encode(sae, sae_input(w, sae, contexts))  # [N, T, d_sae]
    logits = logit_effects(w, sae)
    unit = sae["W_dec"] / sae["W_dec"].norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    checked = 0
    if len(records) != d_sae:
        failures.append(f"{label}: {len(records)} records, expected {d_sae}")
    if summary["tokens"] != N * T or summary["contexts"] != N:
        failures.append(f"{label}: summary tokens {summary['tokens']} contexts {summary['contexts']}")
    dead_ref = 0
    for rec in records:
        f = rec["feature"]
        a = acts[:, :, f]
        count = int((a > 0).sum())
        dead_ref += count == 0
        checked += 1
        if rec["count"] != count or rec["dead"] != (count == 0):
            failures.append(f"{label}/f{f}: count {rec['count']} dead {rec['dead']}, reference {count}")
            continue
        if not close(rec["frequency"], count / (N * T)):
            failures.append(f"{label}/f{f}: frequency {rec['frequency']}, reference {count / (N * T)}")
        if sum(rec["histogram"]["counts"]) != count:
            failures.append(f"{label}/f{f}: histogram holds {sum(rec['histogram']['counts'])}")
        if count == 0:
            if rec["top_examples"] or rec["interval_samples"]:
                failures.append(f"{label}/f{f}: a dead feature has examples")
            continue
        if not close(rec["max_activation"], float(a.max())):
            failures.append(f"{label}/f{f}: max {rec['max_activation']}, reference {float(a.max())}")
        firing = a[a > 0]
        if not close(rec["mean_activation"], float(firing.mean())):
            failures.append(f"{label}/f{f}: mean {rec['mean_activation']}, reference {float(firing.mean())}")
        # Top contexts by peak.
        peaks, where = a.max(1)
        order = [c for c in torch.argsort(peaks, descending=True, stable=True).tolist() if peaks[c] > 0]
        expected = order[:TOP]
        got = [e["context"] for e in rec["top_examples"]]
        # Contexts whose peaks tie (the BOS at position 0 of every context gives the same value
        # in exact arithmetic) may be ordered by float32 noise: rank by rank, the context we
        # chose must have the reference's peak value of that rank.
        if len(got) != len(expected) or any(
                not close(float(peaks[c]), float(peaks[e]), rel=1e-5) for c, e in zip(got, expected)):
            failures.append(f"{label}/f{f}: top contexts {got}, reference {expected}")
        for e in rec["top_examples"]:
            c, p = e["context"], e["position"]
            if p != int(where[c]) or not close(e["activation"], float(peaks[c])):
                failures.append(f"{label}/f{f}: top context {c} peak at {p} = {e['activation']}, "
                                f"reference {int(where[c])} = {float(peaks[c])}")
            start = max(0, p - WINDOW_BEFORE)
            end = min(T, p + WINDOW_AFTER + 1)
            if e["window_start"] != start or len(e["activations"]) != end - start:
                failures.append(f"{label}/f{f}: window {e['window_start']}+{len(e['activations'])}")
                continue
            if e["token_ids"] != contexts[c, start:end].tolist():
                failures.append(f"{label}/f{f}: window tokens {e['token_ids']}")
            for i, v in enumerate(e["activations"]):
                if not close(v, float(a[c, start + i])):
                    failures.append(f"{label}/f{f}: window activation {v} at {start + i}, "
                                    f"reference {float(a[c, start + i])}")
            checked += 1
        # Interval samples.
        total = 0
        for g in rec["interval_samples"]:
            total += g["count"]
            for e in g["examples"]:
                ref = float(a[e["context"], e["position"]])
                if not close(e["activation"], ref) or not (
                        g["lower"] * (1 - REL) - 1e-6 <= ref <= g["upper"] * (1 + REL) + 1e-6):
                    failures.append(f"{label}/f{f}: sample {e['activation']} (reference {ref}) "
                                    f"outside [{g['lower']}, {g['upper']}]")
        if total != count:
            failures.append(f"{label}/f{f}: intervals hold {total} of {count}")
    if summary["dead_features"] != dead_ref:
        failures.append(f"{label}: {summary['dead_features']} dead, reference {dead_ref}")
    # Logit effects and neighbours, for every feature (dead or not).
    for rec in records:
        f = rec["feature"]
        up = torch.topk(logits[f], LOGIT_K)
        down = torch.topk(logits[f], LOGIT_K, largest=False)
        for kind, ref in [("raised", up), ("lowered", down)]:
            ours = rec["logits"][kind]
            ids = [e["token_id"] for e in ours]
            if ids != ref.indices.tolist():
                # Near-ties may swap: the values must still agree rank by rank.
                if not all(close(e["value"], float(logits[f, e["token_id"]])) for e in ours):
                    failures.append(f"{label}/f{f}: {kind} tokens {ids}, reference {ref.indices.tolist()}")
            for e, v in zip(ours, ref.values.tolist()):
                if not close(e["value"], v, absolute=1e-5):
                    failures.append(f"{label}/f{f}: {kind} value {e['value']}, reference {v}")
            checked += 1
        c = cos[f].clone()
        c[f] = -3
        ref_n = torch.topk(c, 10)
        for e, v in zip(rec["neighbours"], ref_n.values.tolist()):
            if not close(e["cosine"], v, absolute=1e-5):
                failures.append(f"{label}/f{f}: neighbour cosine {e['cosine']}, reference {v}")
        if [e["feature"] for e in rec["neighbours"]][:3] != ref_n.indices.tolist()[:3]:
            failures.append(f"{label}/f{f}: neighbours {[e['feature'] for e in rec['neighbours']]}, "
                            f"reference {ref_n.indices.tolist()}")
        checked += 1
    return checked


def run_features(saectl, sae_dir, model_dir, data, out, *extra):
    cmd = [saectl, "features", sae_dir, "--model", model_dir, "--dataset", data,
           "--tokens", str(N_ROWS * CONTEXT), "--top", str(TOP), "--out", out,
           "--threads", "2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def check_errors(saectl, tmp, model_dir, data, failures):
    """The user's mistakes: exit 2, a message naming both sides and the fix, nothing written."""
    wide = os.path.join(tmp, "wide")
    write_sae(wide, random_sae(9, D + 8, 8), "blocks.0.hook_resid_pre", None, "transformer_lens")
    ok = os.path.join(tmp, "ok")
    write_sae(ok, random_sae(9, D, 8), "blocks.0.hook_resid_pre", None, "transformer_lens")
    empty = os.path.join(tmp, "empty.jsonl")
    open(empty, "w").close()
    cases = [
        ("width", wide, data, [], [f"d_in {D + 8}", f"width {D}", model_dir, "--model"]),
        ("empty dataset", ok, empty, [], [empty]),
        ("top > contexts", ok, data, ["--top", str(N_ROWS + 1)],
         [f"--top {N_ROWS + 1}", f"{N_ROWS} contexts", "--tokens"]),
        ("tokens > dataset", ok, data, ["--tokens", str(10 * N_ROWS * CONTEXT)],
         [f"holds {N_ROWS} contexts", "--tokens"]),
    ]
    for label, sae_dir, dataset, extra, needles in cases:
        out = os.path.join(tmp, "bad-out")
        defaults = [flag for flag in [["--tokens", str(N_ROWS * CONTEXT)], ["--top", str(TOP)]]
                    if flag[0] not in extra]
        cmd = [saectl, "features", sae_dir, "--model", model_dir, "--dataset", dataset,
               "--out", out, *sum(defaults, []), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True)
        message = r.stderr.strip()
        if r.returncode != 2:
            failures.append(f"error/{label}: exit {r.returncode}, expected 2 ({message})")
        for needle in needles:
            if needle not in message:
                failures.append(f"error/{label}: message {message!r} does not name {needle!r}")
        left = glob.glob(out + "*")
        if left:
            failures.append(f"error/{label}: left {left}")
        print(f"error/{label}: exit {r.returncode}: {message.splitlines()[-1] if message else ''}")
    # A folder that is not a previous output is never replaced.
    precious = os.path.join(tmp, "precious")
    os.makedirs(precious)
    open(os.path.join(precious, "notes.txt"), "w").write("keep me")
    r = run_features(saectl, ok, model_dir, data, precious)
    if r.returncode != 2 or not os.path.exists(os.path.join(precious, "notes.txt")):
        failures.append(f"error/precious: exit {r.returncode} ({r.stderr.strip()})")


def check_interrupt(saectl, tmp, model_dir, failures):
    """Ctrl-C during the pass: exit 3, nothing written. The signal is sent once the pass has
    logged its first progress line (a tenth of 20000 contexts), not after a sleep."""
    g = torch.Generator().manual_seed(5)
    rows = torch.randint(0, VOCAB, (20000, ROW), generator=g, dtype=torch.int64)
    data = os.path.join(tmp, "many_rows.npy")
    np.save(data, rows.numpy().astype("<i4"))
    sae_dir = os.path.join(tmp, "interrupt_sae")
    write_sae(sae_dir, random_sae(4, D, 40), "blocks.1.hook_resid_pre", None, "transformer_lens")
    out = os.path.join(tmp, "interrupted")
    proc = subprocess.Popen([saectl, "features", sae_dir, "--model", model_dir, "--dataset", data,
                             "--tokens", str(20000 * CONTEXT), "--out", out, "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "features [" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    code = proc.wait()
    message = (rest or "").strip()
    if code != 3 or "interrupted" not in message:
        failures.append(f"interrupt: exit {code}, expected 3 ({''.join(seen)}{message})")
    if glob.glob(out + "*"):
        failures.append(f"interrupt: left {glob.glob(out + '*')}")
    print(f"interrupt: exit {code}: {message.splitlines()[-1] if message else ''}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_weights(2468)
        weights["wte.weight"] = weights["wte.weight"] * 20
        model_dir = os.path.join(tmp, "model")
        os.makedirs(model_dir)
        config = {"model_type": "gpt2", "n_layer": N_LAYER, "n_embd": D, "n_head": H,
                  "vocab_size": VOCAB, "n_positions": N_CTX, "n_ctx": N_CTX,
                  "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump(config, f)
        safetensors_py.save(os.path.join(model_dir, "model.safetensors"), weights, {"format": "pt"})
        w = {k: v.double() for k, v in weights.items()}

        g = torch.Generator().manual_seed(99)
        rows = torch.randint(0, VOCAB, (N_ROWS, ROW), generator=g, dtype=torch.int64)
        rows[:, 0] = 50256
        data = os.path.join(tmp, "rows.npy")
        np.save(data, rows.numpy().astype("<i4"))
        contexts = rows[:, :CONTEXT]

        cases = [
            ("resid_standard", random_sae(1, D, 40), "blocks.1.hook_resid_pre", None, "transformer_lens"),
            ("z_head_topk", random_sae(2, DH, 24, k=4, dead=0), "blocks.2.attn.hook_z", 1, "none"),
            ("mlp_post_standard", random_sae(3, 4 * D, 32), "blocks.0.mlp.hook_post", None, "transformer_lens"),
        ]
        for label, sae, hook, head, processing in cases:
            folder = os.path.join(tmp, label)
            ref_sae = write_sae(folder, sae, hook, head, processing)
            out = os.path.join(tmp, label + "-features")
            r = run_features(args.saectl, folder, model_dir, data, out)
            if r.returncode != 0:
                failures.append(f"{label}: saectl features failed ({r.returncode}): {r.stderr.strip()}")
                continue
            n = check_case(label, os.path.join(out, "features.jsonl"),
                           os.path.join(out, "summary.json"), w, ref_sae, contexts, failures)
            checked += n
            for name in ["index.html", "feature.html", "assets/dashboard.js", "assets/dashboard.css",
                         "data/index.js", "data/vocab.js", "data/chunk-00000.js"]:
                if not os.path.exists(os.path.join(out, name)):
                    failures.append(f"{label}: {name} missing")
            print(f"{label}: {n} checks; {r.stdout.strip().splitlines()[0]}")
        # --features: only those records, the same values.
        out = os.path.join(tmp, "subset")
        r = run_features(args.saectl, os.path.join(tmp, "resid_standard"), model_dir, data, out,
                         "--features", "5,7-8")
        if r.returncode != 0:
            failures.append(f"--features failed: {r.stderr.strip()}")
        else:
            subset = [json.loads(line) for line in open(os.path.join(out, "features.jsonl"))]
            full = {json.loads(line)["feature"]: json.loads(line)
                    for line in open(os.path.join(tmp, "resid_standard-features", "features.jsonl"))}
            if [rec["feature"] for rec in subset] != [5, 7, 8]:
                failures.append(f"--features: records {[rec['feature'] for rec in subset]}")
            for rec in subset:
                if rec != full.get(rec["feature"]):
                    failures.append(f"--features: record {rec['feature']} differs from the full run's")
        # Running again replaces the output.
        r = run_features(args.saectl, os.path.join(tmp, "resid_standard"), model_dir, data, out)
        if r.returncode != 0 or sum(1 for _ in open(os.path.join(out, "features.jsonl"))) != 40:
            failures.append(f"rerun into a previous output: exit {r.returncode} {r.stderr.strip()}")
        if glob.glob(out + ".tmp-*") or glob.glob(out + ".old-*"):
            failures.append("temporary folders left behind")
        check_errors(args.saectl, tmp, model_dir, data, failures)
        check_interrupt(args.saectl, tmp, model_dir, failures)
    for f in failures:
        print("MISMATCH", f)
    print(f"features reference: {checked} checks, {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
