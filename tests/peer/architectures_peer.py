"""Peer test: the real SAELens 6 loads the SAE folders we export for the SAELens 6 architectures
and encodes and decodes as we do.

For batchtopk, matryoshka_batchtopk (both exported as JumpReLU SAEs with the running threshold,
as SAELens saves them), jumprelu and gated: `sae_step_harness` trains a few steps on random
activations, exports the SAE in SAELens's format and records our inference encoding and
reconstruction of a probe batch (also with normalize_activations and apply_b_dec_to_input
false); `SAE.load_from_disk` reads the folder and its `encode` and
`decode(encode(x))` must agree with ours within 1e-5 (relative to the largest value).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

from sae_lens import SAE

D_IN, D_SAE, BATCH, STEPS = 16, 64, 32, 6


def init(arch, g):
    W_dec = torch.empty(D_SAE, D_IN).uniform_(-1, 1, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    tensors = dict(W_enc=W_dec.t().contiguous(), W_dec=W_dec, b_dec=torch.randn(D_IN, generator=g) * 0.1)
    bias = torch.randn(D_SAE, generator=g) * 0.05
    if arch == "gated":
        tensors.update(b_gate=bias, b_mag=torch.randn(D_SAE, generator=g) * 0.05,
                       r_mag=torch.randn(D_SAE, generator=g) * 0.1)
    else:
        tensors["b_enc"] = bias
    if arch == "jumprelu":
        tensors["threshold"] = torch.rand(D_SAE, generator=g) * 0.5
    return tensors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--harness", required=True)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(4)
    common = dict(lr=1e-3, lr_scheduler_name="constant", lr_warm_up_steps=0, total_steps=STEPS,
                  l1_coefficient=0.01, dead_feature_window=1000)
    cases = {
        "batchtopk": dict(common, architecture="batchtopk", k=4, topk_threshold_lr=0.1),
        "matryoshka_batchtopk": dict(common, architecture="matryoshka_batchtopk", k=4,
                                     topk_threshold_lr=0.1, matryoshka_widths=[16, 64]),
        "jumprelu": dict(common, architecture="jumprelu", jumprelu_bandwidth=0.5, l0_coefficient=0.01),
        "gated": dict(common, architecture="gated"),
        # SAELens 6's normalize_activations and apply_b_dec_to_input: expected_average_only_in
        # and an unapplied decoder bias are folded into the exported weights; constant_norm_rescale
        # stays in cfg.json and SAELens applies it when it encodes and decodes.
        "jumprelu_constant_norm_rescale": dict(common, architecture="jumprelu",
                                               jumprelu_bandwidth=0.5, l0_coefficient=0.01,
                                               normalize_activations="constant_norm_rescale"),
        "gated_expected_average_x_in": dict(common, architecture="gated",
                                            normalize_activations="expected_average_only_in",
                                            apply_b_dec_to_input=False),
        "batchtopk_x_in": dict(common, architecture="batchtopk", k=4, topk_threshold_lr=0.1,
                               apply_b_dec_to_input=False),
    }
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in cases.items():
            tensors = init(options["architecture"], g)
            tensors["batches"] = torch.randn(STEPS, BATCH, D_IN, generator=g) * 2 + 0.5
            tensors["probe"] = torch.randn(64, D_IN, generator=g) * 2 + 0.5
            path_in, path_out = os.path.join(tmp, name + "_in.safetensors"), os.path.join(tmp, name + "_out.safetensors")
            folder = os.path.join(tmp, name)
            save_file({k: v.contiguous() for k, v in tensors.items()}, path_in,
                      metadata={"options": json.dumps(options)})
            subprocess.run([args.harness, path_in, path_out, folder], check=True)
            ours = load_file(path_out)
            sae = SAE.load_from_disk(folder, device="cpu")
            with torch.no_grad():
                f = sae.encode(tensors["probe"])
                x_hat = sae.decode(f)
            active = int((f > 0).sum())
            for label, a, b in [("encode", f, ours["probe.feature_acts"]), ("decode", x_hat, ours["probe.x_hat"])]:
                err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
                if err > 1e-5:
                    failures.append(f"{name} {label}: relative error {err:.3g}")
            if active == 0:
                failures.append(f"{name}: no latent is active on the probe; the comparison tests little")
            print(f"{name}: SAELens loaded it as {type(sae).__name__}; {active} active latents on the probe")
    for f in failures:
        print("MISMATCH", f)
    print(f"architectures peer: {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
