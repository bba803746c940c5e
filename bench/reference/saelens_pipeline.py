"""The whole training pipeline, ours beside SAELens 6, on the CPU: for bench/pipeline_vs_saelens.sh.

Runs in the peer virtual environment (scripts/peer-venv.sh). One config, built with SAELens's own
classes (LanguageModelSAERunnerConfig + StandardTrainingSAEConfig) and written as SAELens's runner
writes runner_cfg.json, is trained twice on the same GPT-2 (a Hugging Face folder) and the same
pre-tokenised JSONL file (rows of --ctx token ids, column input_ids):

  ours:    `saectl train runner_cfg.json --threads N --set model_path=MODEL
            --set n_batches_in_buffer=B --set b_dec_init_method=zeros` (the only overrides:
            SAELens has no key for the model's folder, its n_batches_in_buffer counts another
            unit, see below, and SAELens 6 starts b_dec at zero where saectl reads the seed's
            geometric median for a file without the key);
  SAELens: LanguageModelSAETrainingRunner(cfg, override_model=HookedTransformer built from the
            same folder, override_dataset=the same file read with `datasets`), .run().

Both with torch.set_num_threads(N) / --threads N, the same context size, batch, number of
training tokens, hook, processing (SAELens's default {center_writing_weights: False}), no evals,
no checkpoints, no wandb. The mixing buffers hold the same number of activations and keep the same
half: SAELens 6's buffer is n_batches_in_buffer * context_size activations, ours is
n_batches_in_buffer * store_batch_size * context_size, so SAELens's value is ours times
store_batch_size. Throughput is training tokens over each side's pipeline time: from just
before the first model forward (the buffer's first fill) to the end of the last SAE step, so
every forward and every step, nothing of loading or saving. Ours: from saectl's log line that
its mixing buffer exists (model loaded, SAE made) to its last step's log line, stamped on
arrival; SAELens: from the call of runner.run() (model and dataset loaded) to the return of its
last SAETrainer.step. saectl's own figure (its loop only: the first buffer fill is before it)
and each side's whole wall time (loading, and for saectl writing the final SAE) are printed too.

Prints a table, each side's loss, mse and L0 per step, and a last JSON line. Exits 1 if a side
did not train (its loss did not fall) or trained another number of steps. Note: for `standard`
the two sides do not optimise the same loss (ours is the seed's, with the MSE normalised by the
centred input norm, docs/definitions.md; SAELens 6's sums the squared error over d_in), so their
L0, and with it our sparse step's share, differ; `topk` fixes L0 at k on both sides.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "peer"))
import peer_gpt2  # noqa: E402

from datasets import load_dataset  # noqa: E402
from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig  # noqa: E402
from sae_lens import StandardTrainingSAEConfig, TopKTrainingSAEConfig  # noqa: E402
from sae_lens.llm_sae_training_runner import LanguageModelSAETrainingRunner  # noqa: E402
from sae_lens.training.sae_trainer import SAETrainer  # noqa: E402
import sae_lens  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

BOS = 50256


def write_token_rows(saectl, corpus, rows_needed, ctx, path):
    """The first documents of `corpus` (JSONL, "text") tokenised by `saectl tokenize`, joined
    into one stream and cut into rows of `ctx` ids that each start with BOS."""
    texts, chars = [], 0
    with open(corpus) as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"])
                chars += len(texts[-1])
            if chars > rows_needed * (ctx - 1) * 5:  # GPT-2 BPE: about 4 characters a token
                break
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as t:
        t.write("\n\n".join(texts))
    try:
        ids = json.loads(peer_gpt2.run([saectl, "tokenize", "--file", t.name, "-o", "json"]))
    finally:
        os.unlink(t.name)
    n = min(rows_needed, len(ids) // (ctx - 1))
    if n < rows_needed:
        raise RuntimeError(f"{corpus} gives {n} rows of {ctx} tokens, {rows_needed} needed")
    with open(path, "w") as f:
        for r in range(n):
            f.write(json.dumps({"input_ids": [BOS] + ids[r * (ctx - 1):(r + 1) * (ctx - 1)]}))
            f.write("\n")
    return n


def runner_config(a, dataset):
    if a.arch == "topk":
        sae = TopKTrainingSAEConfig(d_in=768, d_sae=768 * a.expansion, k=a.k)
    else:
        sae = StandardTrainingSAEConfig(d_in=768, d_sae=768 * a.expansion, l1_coefficient=a.l1)
    return LanguageModelSAERunnerConfig(
        sae=sae, model_name="gpt2", hook_name=a.hook, dataset_path=dataset,
        is_dataset_tokenized=True, streaming=False, context_size=a.ctx,
        training_tokens=a.steps * a.batch, train_batch_size_tokens=a.batch,
        store_batch_size_prompts=a.store_batch,
        n_batches_in_buffer=a.buffer_batches * a.store_batch, lr=a.lr,
        lr_scheduler_name="constant", n_eval_batches=0, n_checkpoints=0, device="cpu", seed=0,
        output_path=None, verbose=False, dtype="float32",
        logger=LoggingConfig(log_to_wandb=False, wandb_log_frequency=1))


STEP_LINE = re.compile(r"step (\d+)/\d+ tokens \d+ loss (\S+) mse (\S+) .* L0 (\S+)")
TRAINED_LINE = re.compile(r"trained (\d+) steps, (\d+) tokens in .* \((\d+) tokens/s\)")


def run_ours(a, cfg_path, model, out):
    """saectl train; its pipeline time runs from its mixing buffer's creation (logged once the
    model is loaded and the SAE made, before the first forward) to its last step's log line,
    both stamped here as they arrive (stderr is unbuffered)."""
    cmd = [a.saectl, "train", cfg_path, "--output", out, "--threads", str(a.threads),
           "--set", f"model_path={model}", "--set", f"n_batches_in_buffer={a.buffer_batches}",
           "--set", "b_dec_init_method=zeros"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1)
    stderr, start, end = [], None, None
    for line in proc.stderr:  # stdout is a few lines: it cannot fill its pipe meanwhile
        now = time.perf_counter()
        stderr.append(line)
        if start is None and "mixing buffer: " in line:
            start = now
        if STEP_LINE.search(line):
            end = now
    stdout = proc.stdout.read()
    proc.wait()
    wall = time.perf_counter() - t0
    stderr = "".join(stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}")
    trained = TRAINED_LINE.search(stdout)
    if trained is None or start is None or end is None:
        raise RuntimeError(f"saectl train's output lacks the lines timed here:\n{stdout}{stderr}")
    steps = STEP_LINE.findall(stderr)
    tokens = int(trained[2])
    return {"steps": int(trained[1]), "tokens": tokens, "tokens_per_s": tokens / (end - start),
            "saectl_tokens_per_s": float(trained[3]), "wall_s": wall,
            "losses": [float(x[1]) for x in steps], "mse": [float(x[2]) for x in steps],
            "l0": [float(x[3]) for x in steps]}


def run_saelens(a, cfg, model_dir, dataset):
    t0 = time.perf_counter()
    hf = GPT2LMHeadModel.from_pretrained(model_dir)
    model = peer_gpt2.hooked_transformer(hf, "transformer_lens_uncentered")
    del hf
    ds = load_dataset("json", data_files=dataset, split="train")
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=ds, override_model=model)
    losses, mse, l0, ends = [], [], [], []
    original = SAETrainer.step

    def step(self, batch):  # records each step's loss; the step itself is SAELens's
        out = original(self, batch)
        losses.append(out.loss.item())
        mse.append(out.losses["mse_loss"].item())
        l0.append((out.feature_acts > 0).sum(-1).float().mean().item())
        ends.append(time.perf_counter())
        return out

    SAETrainer.step = step
    try:
        t1 = time.perf_counter()
        runner.run()
        loop = ends[-1] - t1 if ends else float("nan")
    finally:
        SAETrainer.step = original
    tokens = len(losses) * a.batch
    return {"steps": len(losses), "tokens": tokens, "tokens_per_s": tokens / loop,
            "wall_s": time.perf_counter() - t0, "losses": losses, "mse": mse, "l0": l0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--saectl", required=True)
    p.add_argument("--model", required=True, help="Hugging Face GPT-2 folder")
    p.add_argument("--corpus", required=True, help="JSONL with a text column")
    p.add_argument("--hook", default="blocks.2.hook_resid_pre")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--expansion", type=int, default=32)
    p.add_argument("--store-batch", type=int, default=32, help="contexts per model forward")
    p.add_argument("--buffer-batches", type=int, default=2,
                   help="our n_batches_in_buffer (SAELens gets this times --store-batch)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--l1", type=float, default=5.0, help="standard: l1_coefficient")
    p.add_argument("--arch", choices=["standard", "topk"], default="topk")
    p.add_argument("--k", type=int, default=32, help="topk: k")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    peer_gpt2.saectl_path(a.saectl)

    with tempfile.TemporaryDirectory() as tmp:
        dataset = os.path.join(tmp, "tokens.jsonl")
        # Rows for every step, the buffer's first fill and one spare forward, so that neither
        # side starts a second epoch.
        buffer_rows = a.buffer_batches * a.store_batch
        rows = (a.steps * a.batch + a.ctx - 1) // a.ctx + buffer_rows + 2 * a.store_batch
        write_token_rows(a.saectl, a.corpus, rows, a.ctx, dataset)
        cfg = runner_config(a, dataset)
        cfg_path = os.path.join(tmp, "runner_cfg.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg.to_dict(), f)  # as LanguageModelSAETrainingRunner writes it

        print(f"GPT-2 small shape ({a.model}), {a.hook}, {a.arch} SAE, d_sae "
              f"{768 * a.expansion} (expansion {a.expansion}), batch {a.batch} tokens, context "
              f"{a.ctx}, {a.steps} steps ({a.steps * a.batch} training tokens), {rows} rows of "
              f"the same token file, "
              f"buffer {buffer_rows * a.ctx} activations, {a.threads} threads; torch "
              f"{torch.__version__}, sae-lens {sae_lens.__version__}", flush=True)
        ours = run_ours(a, cfg_path, a.model, os.path.join(tmp, "ours"))
        theirs = run_saelens(a, cfg, a.model, dataset)

    print(f"{'':22} {'steps':>6} {'tokens':>8} {'pipeline s':>11} {'tokens/s':>10} "
          f"{'whole wall s':>13}")
    for name, r in (("ours (saectl train)", ours), ("SAELens 6", theirs)):
        print(f"{name:22} {r['steps']:6d} {r['tokens']:8d} {r['tokens'] / r['tokens_per_s']:11.1f} "
              f"{r['tokens_per_s']:10.0f} {r['wall_s']:13.1f}")
    ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
    print(f"(saectl's own figure, its loop after the first buffer fill: "
          f"{ours['saectl_tokens_per_s']:.0f} tokens/s)")
    print(f"ratio (ours / SAELens, tokens/s of the pipeline): {ratio:.2f}x")
    failures = []
    for name, r in (("ours", ours), ("SAELens", theirs)):
        if r["steps"] != a.steps or len(r["losses"]) != a.steps:
            failures.append(f"{name} trained {r['steps']} steps ({len(r['losses'])} losses "
                            f"seen), {a.steps} asked")
        print(f"{name} loss by step: " + " ".join(f"{x:.4g}" for x in r["losses"]))
        print(f"{name} mse by step:  " + " ".join(f"{x:.4g}" for x in r["mse"]))
        print(f"{name} L0 by step:   " + " ".join(f"{x:.0f}" for x in r["l0"]))
        if len(r["losses"]) >= 2 and not r["losses"][-1] < r["losses"][0]:
            failures.append(f"{name}'s loss did not fall: {r['losses'][0]:.4g} -> "
                            f"{r['losses'][-1]:.4g}")
    print(json.dumps({"arch": a.arch, "steps": a.steps, "ours_tokens_per_s": ours["tokens_per_s"],
                      "saelens_tokens_per_s": theirs["tokens_per_s"], "ratio": ratio,
                      "ours_losses": ours["losses"], "saelens_losses": theirs["losses"]}))
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
