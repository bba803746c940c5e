"""Peer test: a config that SAELens 6 writes from its own LanguageModelSAERunnerConfig trains here.

For a standard and a topk SAE, the config is built in Python with SAELens's own classes
(LanguageModelSAERunnerConfig with StandardTrainingSAEConfig / TopKTrainingSAEConfig and a
LoggingConfig) and written the way SAELens's runner writes runner_cfg.json
(json.dump(cfg.to_dict())). Then:
  1. `saectl submit FILE --dry-run` accepts it (exit 0) and prints it in the seed's spelling with
     SAELens's values: hook, tokens, batch sizes, d_in, d_sae, k / l1_coefficient, lr, schedule;
  2. `saectl train FILE` trains it on a random Hugging Face GPT-2 and a token .npy (the only
     --set is model_path, which SAELens has no key for) for the number of steps SAELens's
     total_training_steps gives, and the exported SAE has the architecture and width asked for;
  3. the same config with SAELens's default model_from_pretrained_kwargs for HookedTransformer,
     {center_writing_weights: False}, is read as processing transformer_lens_uncentered and
     trains (eval_hooks_peer.py checks that processing's hooks against TransformerLens).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_gpt2  # noqa: E402

from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig  # noqa: E402
from sae_lens import StandardTrainingSAEConfig, TopKTrainingSAEConfig  # noqa: E402
import sae_lens  # noqa: E402


def runner_config(architecture, dataset, kwargs):
    if architecture == "topk":
        sae = TopKTrainingSAEConfig(d_in=peer_gpt2.D, d_sae=256, k=8)
    else:
        sae = StandardTrainingSAEConfig(d_in=peer_gpt2.D, d_sae=256, l1_coefficient=0.002)
    return LanguageModelSAERunnerConfig(
        sae=sae, model_name="gpt2", hook_name="blocks.1.hook_resid_pre", dataset_path=dataset,
        is_dataset_tokenized=True, context_size=32, training_tokens=2560,
        train_batch_size_tokens=256, store_batch_size_prompts=8, n_batches_in_buffer=8,
        lr=0.001, lr_scheduler_name="constant", n_eval_batches=0, device="cpu", seed=5,
        model_from_pretrained_kwargs=kwargs, verbose=False,
        logger=LoggingConfig(log_to_wandb=False, wandb_log_frequency=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--saectl", required=True)
    args = parser.parse_args()
    saectl = peer_gpt2.saectl_path(args.saectl)
    torch.set_num_threads(2)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "model")
        peer_gpt2.write_random_gpt2(model_dir, seed=4)
        g = torch.Generator().manual_seed(8)
        stream = torch.randint(0, 5000, (20000,), generator=g)
        stream[torch.randint(0, 20000, (400,), generator=g)] = 50256
        dataset = os.path.join(tmp, "train.npy")
        np.save(dataset, stream.numpy().astype("<i4"))

        for architecture in ("standard", "topk"):
            cfg = runner_config(architecture, dataset, kwargs={})
            path = os.path.join(tmp, f"{architecture}_runner_cfg.json")
            with open(path, "w") as f:
                json.dump(cfg.to_dict(), f)  # as LanguageModelSAETrainingRunner.save_model does
            printed = yaml.safe_load(peer_gpt2.run(
                [saectl, "submit", path, "--dry-run", "--set", f"model_path={model_dir}"]))
            expected = {
                "hook_point": cfg.hook_name, "total_training_tokens": cfg.training_tokens,
                "train_batch_size": cfg.train_batch_size_tokens,
                "store_batch_size": cfg.store_batch_size_prompts, "d_in": cfg.sae.d_in,
                "d_sae": cfg.sae.d_sae, "lr": cfg.lr, "lr_scheduler_name": "constant",
                "architecture": architecture, "context_size": cfg.context_size,
                "processing": "transformer_lens", "seed": 5, "wandb_log_frequency": 1,
                "run_name": cfg.logger.run_name, "lr_end": cfg.lr_end,
            }
            if architecture == "topk":
                expected["k"] = cfg.sae.k
                expected["aux_k_coefficient"] = cfg.sae.aux_loss_coefficient
            else:
                expected["l1_coefficient"] = cfg.sae.l1_coefficient
            for key, value in expected.items():
                got = printed.get(key)
                if isinstance(value, float) and isinstance(got, (str, int, float)):
                    got = float(got)  # PyYAML reads 1e-4 (no dot) as text
                if got != value:
                    failures.append(f"{architecture}: --dry-run printed {key}: "
                                    f"{printed.get(key)!r}, SAELens wrote {value!r}")

            out = os.path.join(tmp, f"run_{architecture}")
            log = peer_gpt2.run([saectl, "train", path, "--output", out, "--threads", "2",
                                 "--set", f"model_path={model_dir}"])
            steps = cfg.total_training_steps
            if f"trained {steps} steps, {cfg.training_tokens} tokens" not in log:
                failures.append(f"{architecture}: saectl train did not train {steps} steps: {log}")
            info = json.loads(peer_gpt2.run([saectl, "sae", "info", os.path.join(out, "final"),
                                             "-o", "json"]))
            if info["architecture"] != architecture or info["d_sae"] != cfg.sae.d_sae:
                failures.append(f"{architecture}: exported {info['architecture']} "
                                f"d_sae {info['d_sae']}")

        # SAELens's own default for HookedTransformer: TransformerLens's processing without
        # center_writing_weights.
        cfg = runner_config("standard", dataset, kwargs=None)
        if cfg.model_from_pretrained_kwargs != {"center_writing_weights": False}:
            failures.append("SAELens's default model_from_pretrained_kwargs is now "
                            f"{cfg.model_from_pretrained_kwargs!r}; revisit this case")
        path = os.path.join(tmp, "default_kwargs_runner_cfg.json")
        with open(path, "w") as f:
            json.dump(cfg.to_dict(), f)
        printed = yaml.safe_load(peer_gpt2.run(
            [saectl, "submit", path, "--dry-run", "--set", f"model_path={model_dir}"]))
        if printed.get("processing") != "transformer_lens_uncentered":
            failures.append("default model_from_pretrained_kwargs: --dry-run printed processing "
                            f"{printed.get('processing')!r}")
        out = os.path.join(tmp, "run_default_kwargs")
        log = peer_gpt2.run([saectl, "train", path, "--output", out, "--threads", "2",
                             "--set", f"model_path={model_dir}"])
        if f"trained {cfg.total_training_steps} steps" not in log:
            failures.append(f"default model_from_pretrained_kwargs: did not train: {log}")
        info = json.loads(peer_gpt2.run([saectl, "sae", "info", os.path.join(out, "final"),
                                         "-o", "json"]))
        if info.get("processing") != "transformer_lens_uncentered":
            failures.append(f"default model_from_pretrained_kwargs: exported processing "
                            f"{info.get('processing')!r}")

    print(f"sae-lens {sae_lens.__version__}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS: SAELens-written standard and topk configs parse and train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
