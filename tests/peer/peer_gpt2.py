"""Shared by the eval peer tests: a random Hugging Face GPT-2 and TransformerLens on it, offline.

HookedTransformer.from_pretrained needs the Hub (it fetches the config of the official name even
when hf_model is given), so the model is built the way from_pretrained builds it internally:
a HookedTransformerConfig from the HF config, TransformerLens's own convert_gpt2_weights, and
load_and_process_state_dict with from_pretrained's processing flags (processing
"transformer_lens": fold_ln, center_writing_weights, center_unembed, fold_value_biases; or
"transformer_lens_uncentered": the same without center_writing_weights, as SAELens sets it) or
from_pretrained_no_processing's (all off).
"""
import os
import subprocess

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
from transformers import GPT2Config, GPT2LMHeadModel

N_LAYER, D, H, N_CTX, VOCAB = 2, 64, 4, 64, 50257


def write_random_gpt2(folder, seed):
    """A GPT-2 with GPT-2's initialisation plus random biases and LayerNorm maps (so weight
    processing has something to fold) and larger embeddings (so that splicing and ablating move
    CE and KL well beyond float32 noise), saved with save_pretrained."""
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=N_LAYER, n_embd=D, n_head=H, n_positions=N_CTX, vocab_size=VOCAB)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif "ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("c_attn.weight"):
                p.mul_(10)  # attention far from uniform
            elif name.endswith("wte.weight"):
                p.mul_(20)  # (tied unembedding) sharp next-token distributions
    model.save_pretrained(folder)
    return model


def hooked_transformer(hf_model, processing):
    c = hf_model.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=4 * c.n_embd, n_ctx=c.n_positions, d_vocab=c.vocab_size, act_fn="gelu_new",
        normalization_type="LN", eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel", positional_embedding_type="standard",
        default_prepend_bos=False)
    model = HookedTransformer(cfg)
    # "transformer_lens_uncentered": SAELens 6's default model_from_pretrained_kwargs,
    # {center_writing_weights: False}, the other flags at from_pretrained's defaults.
    on = processing in ("transformer_lens", "transformer_lens_uncentered")
    model.load_and_process_state_dict(convert_gpt2_weights(hf_model, cfg), fold_ln=on,
                                      center_writing_weights=processing == "transformer_lens",
                                      center_unembed=on, fold_value_biases=on)
    model.eval()
    return model


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def saectl_path(argv_value):
    if not os.access(argv_value, os.X_OK):
        raise RuntimeError(f"saectl not found at {argv_value}")
    return argv_value
