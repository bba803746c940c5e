"""Peer test: SAE folders move both ways between this project and SAELens 6 with the same outputs.

1. Ours -> SAELens: `saectl train` trains a standard and a topk SAE a few steps on a random
   Hugging Face GPT-2 and exports them (SAELens 6's cfg.json, with the origin under "metadata");
   SAELens's `SAE.load_from_disk` loads each as its own architecture with the same hook, and its
   encode/decode of random activations equal `saectl sae encode`'s feature_acts and sae_out.
2. SAELens -> ours: SAELens creates standard (also with apply_b_dec_to_input False), topk (its
   training default rescale_acts_by_decoder_norm True), jumprelu and batchtopk training SAEs,
   trains each 5 Adam steps on random activations (random parameters first, so nothing is at
   its init) and writes it with save_inference_model (batchtopk becomes jumprelu with its
   running threshold, as SAELens does); `saectl sae info` reports the architecture and its
   parameters (k; threshold), and `saectl sae encode` gives SAELens's encode/decode outputs.
Outputs are compared within 1e-5 (absolute, plus 1e-5 relative).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_gpt2  # noqa: E402

import sae_lens  # noqa: E402
from sae_lens import SAE  # noqa: E402
from sae_lens.saes.batchtopk_sae import (BatchTopKTrainingSAE,  # noqa: E402
                                         BatchTopKTrainingSAEConfig)
from sae_lens.saes.jumprelu_sae import (JumpReLUTrainingSAE,  # noqa: E402
                                        JumpReLUTrainingSAEConfig)
from sae_lens.saes.sae import SAEMetadata, TrainStepInput  # noqa: E402
from sae_lens.saes.standard_sae import (StandardTrainingSAE,  # noqa: E402
                                        StandardTrainingSAEConfig)
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig  # noqa: E402

D, D_SAE, K, TOL = 64, 256, 8, 1e-5


def close(a, b):
    return torch.allclose(a, b, atol=TOL, rtol=TOL)


def ours(saectl, sae_dir, x, tmp, label):
    acts = os.path.join(tmp, f"{label}_acts.safetensors")
    out = os.path.join(tmp, f"{label}_out.safetensors")
    save_file({"x": x.contiguous()}, acts)
    peer_gpt2.run([saectl, "sae", "encode", sae_dir, "--in", acts, "--out", out])
    result = load_file(out)
    return result["feature_acts"], result["sae_out"]


def compare(saectl, sae_dir, x, tmp, label, failures):
    peer = SAE.load_from_disk(sae_dir, device="cpu")
    with torch.no_grad():
        f_peer = peer.encode(x)
        out_peer = peer.decode(f_peer)
    f_ours, out_ours = ours(saectl, sae_dir, x, tmp, label)
    if not close(f_ours, f_peer):
        failures.append(f"{label}: feature_acts differ by {(f_ours - f_peer).abs().max():.3g}")
    if not close(out_ours, out_peer):
        failures.append(f"{label}: sae_out differs by {(out_ours - out_peer).abs().max():.3g}")
    if (f_peer > 0).sum() == 0:
        failures.append(f"{label}: no feature fires: the comparison would be empty")
    return peer


def train_ours(saectl, tmp, model_dir, architecture):
    run_yaml = os.path.join(tmp, f"{architecture}.yaml")
    with open(run_yaml, "w") as f:
        f.write(f"""model_path: {model_dir}
dataset_path: {os.path.join(tmp, 'train.npy')}
hook_point: blocks.1.hook_resid_pre
architecture: {architecture}
d_sae: {D_SAE}
{'k: %d' % K if architecture == 'topk' else 'l1_coefficient: 0.0005'}
lr: 0.003
lr_warm_up_steps: 0
context_size: 32
train_batch_size: 256
total_training_tokens: 2560
n_batches_in_buffer: 8
store_batch_size: 8
n_eval_batches: 0
""")
    out = os.path.join(tmp, f"ours_{architecture}")
    peer_gpt2.run([saectl, "train", run_yaml, "--output", out, "--threads", "2"])
    return os.path.join(out, "final")


def saelens_sae(architecture, apply_b_dec):
    common = dict(d_in=D, d_sae=D_SAE, apply_b_dec_to_input=apply_b_dec)
    if architecture == "standard":
        return StandardTrainingSAE(StandardTrainingSAEConfig(**common, l1_coefficient=0.01))
    if architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(**common, k=K))
    if architecture == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**common, k=K,
                                                               topk_threshold_lr=0.2))
    return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(**common, l0_coefficient=0.01,
                                                         jumprelu_init_threshold=0.05))


def trained_by_saelens(architecture, apply_b_dec, folder, g):
    sae = saelens_sae(architecture, apply_b_dec)
    sae.cfg.metadata = SAEMetadata(hook_name="blocks.1.hook_resid_pre", model_name="gpt2",
                                   context_size=32, prepend_bos=True)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name == "threshold":
                p.copy_(0.02 + 0.05 * torch.rand(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-3)
    coefficients = {name: (c.value if hasattr(c, "value") else c)
                    for name, c in sae.get_coefficients().items()}
    for step in range(5):
        x = torch.randn(128, D, generator=g)
        out = sae.training_forward_pass(TrainStepInput(
            sae_in=x, coefficients=coefficients, dead_neuron_mask=None, n_training_steps=step,
            is_logging_step=False))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    sae.save_inference_model(folder)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    saectl = peer_gpt2.saectl_path(args.saectl)
    torch.set_num_threads(2)
    failures, checked = [], []
    g = torch.Generator().manual_seed(11)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        peer_gpt2.write_random_gpt2(model_dir, seed=6)
        stream = torch.randint(0, 5000, (20000,), generator=g)
        stream[torch.randint(0, 20000, (400,), generator=g)] = 50256
        np.save(os.path.join(tmp, "train.npy"), stream.numpy().astype("<i4"))

        for architecture in ("standard", "topk"):
            sae_dir = train_ours(saectl, tmp, model_dir, architecture)
            x = 3 * torch.randn(200, D, generator=g)
            peer = compare(saectl, sae_dir, x, tmp, f"ours_{architecture}", failures)
            if peer.cfg.architecture() != architecture:
                failures.append(f"ours_{architecture}: SAELens loaded {peer.cfg.architecture()}")
            if peer.cfg.metadata.hook_name != "blocks.1.hook_resid_pre":
                failures.append(f"ours_{architecture}: SAELens read hook "
                                f"{peer.cfg.metadata.hook_name}")
            checked.append(f"ours {architecture} -> SAELens")

        for architecture, apply_b_dec in (("standard", True), ("standard", False), ("topk", True),
                                          ("jumprelu", True), ("batchtopk", True)):
            label = f"saelens_{architecture}{'' if apply_b_dec else '_no_b_dec_in'}"
            folder = os.path.join(tmp, label)
            trained_by_saelens(architecture, apply_b_dec, folder, g)
            with open(os.path.join(folder, "cfg.json")) as f:
                written = json.load(f)["architecture"]
            info = json.loads(peer_gpt2.run([saectl, "sae", "info", folder, "-o", "json"]))
            if info["architecture"] != written or info["d_sae"] != D_SAE:
                failures.append(f"{label}: sae info says {info['architecture']} d_sae "
                                f"{info['d_sae']}, cfg.json {written}")
            if written == "topk" and info.get("k") != K:
                failures.append(f"{label}: sae info k {info.get('k')}")
            if written == "jumprelu" and "threshold" not in info:
                failures.append(f"{label}: sae info shows no threshold")
            x = torch.randn(200, D, generator=g)
            compare(saectl, folder, x, tmp, label, failures)
            checked.append(f"SAELens {architecture} (saved as {written}) -> ours")

    print(f"sae-lens {sae_lens.__version__}")
    for line in checked:
        print("checked:", line)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
