"""Peer test: SAELens loads an SAE that `saectl train` exported, and SAELens's own evaluation
code on TransformerLens gives the numbers `saectl eval` prints.

For a residual SAE (TransformerLens processing) and a one-head hook_z SAE (no processing):
  1. `saectl train` trains a few steps on a random Hugging Face GPT-2 and exports the SAE;
  2. `SAE.load_from_disk` reads the export; TransformerLens builds the same model (peer_gpt2.py);
  3. SAELens's get_downstream_reconstruction_metrics (CE, KL: N batches of M contexts) and
     get_sparsity_and_variance_metrics (one batch of all N*M contexts, so that its per-batch
     relative_reconstruction_bias is the pooled one) run on the first N*M rows of a 2-D .npy,
     with no special tokens excluded (docs/evals.md: we evaluate every position);
  4. `saectl eval -o json` on the same rows, and on the SAE as SAELens's save_model writes it
     (SAELens 6's nested cfg.json): the same JSON.
Compared within 1e-4 relative (1e-6 absolute): the CE losses and score, the KLs and score,
explained variance, cossim, l2 norms and ratio, relative reconstruction bias, l0, l1, the dead
and dense counts (from SAELens's feature_density), and mse (SAELens 6.54 sums over dimensions:
ours times d_in). The rows are fed to SAELens's functions through an object with SAELens's
get_batch_tokens method, in order; the computation is SAELens's.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_gpt2  # noqa: E402

from sae_lens import SAE  # noqa: E402
from sae_lens import evals as saelens_evals  # noqa: E402
from sae_lens.training.activation_scaler import ActivationScaler  # noqa: E402

CONTEXT, N_BATCHES, BATCH = 32, 2, 3


class Rows:
    """The token source SAELens's eval functions read (ActivationsStore.get_batch_tokens)."""

    def __init__(self, rows):
        self.rows, self.next = rows, 0

    def get_batch_tokens(self, n):
        batch = self.rows[self.next:self.next + n]
        self.next += n
        return batch


def train_sae(saectl, tmp, model_dir, label, hook, head, processing):
    run_yaml = os.path.join(tmp, f"{label}.yaml")
    with open(run_yaml, "w") as f:
        f.write(f"""model_path: {model_dir}
dataset_path: {os.path.join(tmp, 'train.npy')}
hook_point: {hook}
hook_point_head_index: {'null' if head is None else head}
processing: {processing}
expansion_factor: 4
l1_coefficient: 0.0005
lr: 0.003
lr_warm_up_steps: 0
train_batch_size: 256
store_batch_size: 8
n_batches_in_buffer: 4
context_size: {CONTEXT}
total_training_tokens: 10240
b_dec_init_method: mean
n_eval_batches: 0
""")
    out = os.path.join(tmp, f"run_{label}")
    peer_gpt2.run([saectl, "train", run_yaml, "--output", out, "--threads", "2"])
    return os.path.join(out, "final")


def saelens_metrics(sae, model, rows):
    scaler = ActivationScaler()
    # As run_evals does before calling these functions: they reshape hook_z themselves.
    if "hook_z" in sae.cfg.metadata.hook_name:
        sae.turn_off_forward_pass_hook_z_reshaping()
    with torch.no_grad():
        recon = saelens_evals.get_downstream_reconstruction_metrics(
            sae, model, Rows(rows), scaler, compute_kl=True, compute_ce_loss=True,
            n_batches=N_BATCHES, eval_batch_size_prompts=BATCH, ignore_tokens=None)
        sparse, features = saelens_evals.get_sparsity_and_variance_metrics(
            sae, model, Rows(rows), scaler, n_batches=1, compute_l2_norms=True,
            compute_sparsity_metrics=True, compute_variance_metrics=True,
            compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=N_BATCHES * BATCH, model_kwargs={}, ignore_tokens=None)
    density = torch.tensor(features["feature_density"])
    return recon, sparse, density


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    saectl = peer_gpt2.saectl_path(args.saectl)
    torch.set_num_threads(2)
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        hf = peer_gpt2.write_random_gpt2(model_dir, seed=9)
        g = torch.Generator().manual_seed(3)
        # Training data: a token stream of short documents; evaluation data: rows.
        stream = torch.randint(0, 5000, (20000,), generator=g)
        stream[torch.randint(0, 20000, (400,), generator=g)] = 50256
        np.save(os.path.join(tmp, "train.npy"), stream.numpy().astype("<i4"))
        rows = torch.randint(0, peer_gpt2.VOCAB, (N_BATCHES * BATCH + 2, CONTEXT + 4), generator=g)
        rows[:, 0] = 50256
        eval_npy = os.path.join(tmp, "eval.npy")
        np.save(eval_npy, rows.numpy().astype("<i4"))
        contexts = rows[:N_BATCHES * BATCH, :CONTEXT]

        cases = [("resid", "blocks.1.hook_resid_pre", None, "transformer_lens"),
                 ("z_head", "blocks.0.attn.hook_z", 2, "none")]
        for label, hook, head, processing in cases:
            sae_dir = train_sae(saectl, tmp, model_dir, label, hook, head, processing)
            ours = json.loads(peer_gpt2.run(
                [saectl, "eval", sae_dir, "--model", model_dir, "--dataset", eval_npy,
                 "--n-eval-batches", str(N_BATCHES), "--eval-batch-size-prompts", str(BATCH),
                 "--context-size", str(CONTEXT), "--processing", processing, "--threads", "2",
                 "-o", "json"]))
            sae = SAE.load_from_disk(sae_dir, device="cpu")
            if sae.cfg.metadata.hook_name != hook or sae.cfg.metadata.hook_head_index != head:
                failures.append(f"{label}: SAELens read hook {sae.cfg.metadata.hook_name} head "
                                f"{sae.cfg.metadata.hook_head_index}")
            # SAELens 6 writes the nested cfg.json ("metadata"): saectl eval reads it the same.
            resaved = os.path.join(tmp, f"{label}_saved_by_saelens")
            sae.save_model(resaved)
            again = json.loads(peer_gpt2.run(
                [saectl, "eval", resaved, "--model", model_dir, "--dataset", eval_npy,
                 "--n-eval-batches", str(N_BATCHES), "--eval-batch-size-prompts", str(BATCH),
                 "--context-size", str(CONTEXT), "--processing", processing, "--threads", "2",
                 "-o", "json"]))
            checked += 1
            if again != ours:
                failures.append(f"{label}: the SAE as SAELens saved it evaluates differently: "
                                f"{again} vs {ours}")
            model = peer_gpt2.hooked_transformer(hf, processing)
            recon, sparse, density = saelens_metrics(sae, model, contexts)
            d_in = sae.cfg.d_in
            expected = {
                ("model_performance_preservation", "ce_loss_without_sae"): recon["ce_loss_without_sae"],
                ("model_performance_preservation", "ce_loss_with_sae"): recon["ce_loss_with_sae"],
                ("model_performance_preservation", "ce_loss_with_ablation"): recon["ce_loss_with_ablation"],
                ("model_performance_preservation", "ce_loss_score"): recon["ce_loss_score"],
                ("model_behavior_preservation", "kl_div_with_sae"): recon["kl_div_with_sae"],
                ("model_behavior_preservation", "kl_div_with_ablation"): recon["kl_div_with_ablation"],
                ("model_behavior_preservation", "kl_div_score"): recon["kl_div_score"],
                ("reconstruction_quality", "explained_variance"): sparse["explained_variance"],
                ("reconstruction_quality", "cossim"): sparse["cossim"],
                ("reconstruction_quality", "mse"): sparse["mse"] / d_in,
                ("shrinkage", "l2_norm_in"): sparse["l2_norm_in"],
                ("shrinkage", "l2_norm_out"): sparse["l2_norm_out"],
                ("shrinkage", "l2_ratio"): sparse["l2_ratio"],
                ("shrinkage", "relative_reconstruction_bias"): sparse["relative_reconstruction_bias"],
                ("sparsity", "l0"): sparse["l0"],
                ("sparsity", "l1"): sparse["l1"],
                ("sparsity", "dead_features"): int((density == 0).sum()),
                ("sparsity", "dense_features"): int((density > 0.1).sum()),
            }
            for (group, name), ref in expected.items():
                checked += 1
                got = ours[group][name]
                bad = got != ref if isinstance(ref, int) else abs(got - ref) > 1e-4 * abs(ref) + 1e-6
                if bad:
                    failures.append(f"{label}: {group}.{name} = {got!r}, SAELens {ref!r}")
            print(f"{label} ({processing}): ce_loss_score {recon['ce_loss_score']:.4f} "
                  f"kl_div_score {recon['kl_div_score']:.4f} explained_variance "
                  f"{sparse['explained_variance']:.4f} l0 {sparse['l0']:.2f}")
    for f in failures:
        print("MISMATCH", f)
    print(f"eval SAELens peer: {checked} comparisons, {len(failures)} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
