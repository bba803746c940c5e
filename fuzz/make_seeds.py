#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Every seed is made here, from this project's own formats and examples (no third-party text).
Run again after changing a seed; inputs libFuzzer found and that were merged in later
(scripts/fuzz.sh --merge) stay.
"""
import json
import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def put(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, b"", 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs += data
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blobs


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def seeds_safetensors():
    put("safetensors", "two-tensors", safetensors(
        [("W", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])), ("b", "F32", [3], f32([0.5, -1, 2]))],
        {"format": "pt"}))
    put("safetensors", "dtypes", safetensors(
        [("a", "BF16", [2], b"\x80\x3f\x00\x40"), ("c", "I64", [1], struct.pack("<q", -7)),
         ("d", "U8", [3], b"xyz"), ("e", "BOOL", [2], b"\x00\x01"), ("f", "F16", [0], b"")]))
    put("safetensors", "empty-header", safetensors([]))
    put("safetensors", "truncated", safetensors([("W", "F32", [4], f32([1, 2, 3, 4]))])[:-3])


def seeds_run_config():
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if name.endswith(".yaml"):
            with open(os.path.join(ROOT, "examples", name), "rb") as f:
                put("run_config", name, f.read())
    put("run_config", "minimal.yaml",
        "model_name: gpt2-small\nhook_point: blocks.0.hook_resid_pre\ndataset_path: data.jsonl\n"
        "context_size: 16\nd_in: 768\nexpansion_factor: 2\ntrain_batch_size: 64\n"
        "total_training_tokens: 2e4\n")
    put("run_config", "saelens6-spelling.yaml",
        "model_name: gpt2-small\nhook_name: blocks.1.attn.hook_z\nhook_head_index: 3\n"
        "dataset_path: data.bin\narchitecture: topk\nk: 16\nd_sae: 512\n"
        "train_batch_size_tokens: 128\ntraining_tokens: 1_000_000\nwire_dtype: bfloat16\n"
        "adam_beta1: 0.9\nadam_beta2: 0.999\nlr: 3e-4\n")


def seeds_gpt2_config():
    put("gpt2_config", "gpt2-small.json", json.dumps({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 12, "n_head": 12,
        "n_embd": 768, "n_positions": 1024, "n_ctx": 1024, "vocab_size": 50257, "n_inner": None,
        "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}, indent=2))
    put("gpt2_config", "tiny.json", json.dumps({
        "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 128, "n_inner": 256,
        "activation_function": "gelu"}))
    put("gpt2_config", "empty.json", "{}")


def seeds_tokenizer():
    texts = {
        "english": "The quick brown fox jumps over the lazy dog. It's 2024, isn't it?\n",
        "contractions": "they're we've I'll you'd she's 'S 'LL\n\n\n   spaces  \t tabs",
        "endoftext": "first<|endoftext|>second <|endoftext|><|endoftext|> third",
        "unicode": "naïve café — 東京 🙂 Ω≈ç√ \u00a0non-breaking",
        "numbers": "3.14159 1,000,000 0x7fff 2^64-1 1e-5",
        "code": "def f(x):\n    return {'a': [1, 2]}  # comment\n",
    }
    for name, text in texts.items():
        put("tokenizer", name, text)
    put("tokenizer", "invalid-utf8", b"ok \xff\xfe bad \xc3( half \xe2\x82 end \xf0\x9f\x99")


def u16(ids):
    return struct.pack("<%dH" % len(ids), *ids)


def npy(ids, dtype, shape, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (dtype, shape)
    length_bytes = 2 if version == 1 else 4
    pad = -(6 + 2 + length_bytes + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    fmt = {"<u2": "H", "<i4": "i", "<u4": "I"}[dtype]
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode() + struct.pack(
        "<%d%s" % (len(ids), fmt), *ids)


def seeds_datasets():
    eot = 50256
    stream = [464, 2068, 7586, eot, 39, 995, 11, 13, eot, 1, 2, 3, 4, 5, 6, 7, 8, 9, eot]
    put("dataset_bin", "nanogpt.bin", u16(stream))
    header = struct.pack("<3i", 20240520, 1, len(stream)) + b"\x00" * (256 * 4 - 12)
    put("dataset_bin", "llmc-v1.bin", header + u16(stream))
    header2 = struct.pack("<3i", 20240520, 2, 4) + b"\x00" * (256 * 4 - 12)
    put("dataset_bin", "llmc-v2.bin", header2 + struct.pack("<4I", eot, 10, 20, 30))
    put("dataset_npy", "stream-u2.npy", npy(stream, "<u2", "(%d,)" % len(stream)))
    rows = list(range(100, 132))
    put("dataset_npy", "rows-i4.npy", npy(rows, "<i4", "(4, 8)"))
    put("dataset_npy", "rows-u4-v2.npy", npy(rows[:16], "<u4", "(2, 8)", version=2))
    put("dataset_jsonl", "text.jsonl",
        '{"text": "A first document about foxes."}\n\n{"text": "A second one, \\u00e9t\\u00e9."}\n'
        '{"text": "third", "meta": {"id": 3}}\n')
    put("dataset_jsonl", "tokens.jsonl",
        '{"tokens": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n{"tokens": [10, 11, 12, 13, 14, 15, 16, 17]}\n')
    put("dataset_jsonl", "input-ids.jsonl",
        '{"input_ids": [50256, 1, 2, 3, 4, 5, 6, 7]}\r\n{"input_ids": [9, 8, 7, 6, 5, 4, 3, 2]}\r\n')
    put("dataset_txt", "separated.txt",
        "The first document.\nIt has two lines.\n<|endoftext|>\nThe second document.\n"
        "<|endoftext|>\r\nA third, after a CRLF separator.\n")
    put("dataset_txt", "one-document.txt", "Only one document here, without a separator.")


def archive(files):
    out = b"SAECKPT1"
    for path, data in sorted(files.items()):
        p = path.encode()
        out += struct.pack("<I", len(p)) + p + struct.pack("<Q", len(data)) + data
    return out


def seeds_checkpoint_archive():
    put("checkpoint_archive", "checkpoint", archive({
        "run.yaml": b"model_name: gpt2-small\n", "sae/cfg.json": b'{"d_in": 4, "d_sae": 8}',
        "sae/sae_weights.safetensors": safetensors([("b_dec", "F32", [2], f32([1, 2]))]),
        "state.json": b'{"step": 10}', "state.safetensors": b""}))
    put("checkpoint_archive", "empty", b"SAECKPT1")
    put("checkpoint_archive", "climbs-out", archive({"../escape": b"x"}))
    put("checkpoint_archive", "cut-short", archive({"a/b": b"0123456789"})[:-4])


def seeds_saelens_cfg():
    metadata = {"sae_lens_version": "6.0.0", "model_name": "gpt2-small",
                "hook_name": "blocks.2.hook_resid_pre", "hook_head_index": None,
                "context_size": 128, "prepend_bos": True, "dataset_path": "data.jsonl",
                "model_from_pretrained_kwargs": {"fold_ln": True, "center_writing_weights": True}}
    base = {"d_in": 4, "d_sae": 8, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": True, "normalize_activations": "none",
            "reshape_activations": "none", "metadata": metadata}
    put("saelens_cfg", "standard.json", json.dumps(dict(base, architecture="standard"), indent=2))
    put("saelens_cfg", "topk.json", json.dumps(dict(
        base, architecture="topk", k=3, rescale_acts_by_decoder_norm=True), indent=2))
    put("saelens_cfg", "jumprelu.json", json.dumps(dict(
        base, architecture="jumprelu", apply_b_dec_to_input=False), indent=2))
    put("saelens_cfg", "flat.json", json.dumps({
        "d_in": 4, "d_sae": 8, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2},
        "hook_point": "blocks.5.hook_mlp_out", "hook_point_layer": 5,
        "hook_point_head_index": None, "model_name": "gpt2-small", "context_size": 64,
        "sae_lens_version": "3.12.0"}, indent=2))


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, wire_type, payload):
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + varint(payload)
    if wire_type == 1:
        return key + struct.pack("<Q", payload)
    return key + varint(len(payload)) + payload  # wire type 2


def cursor(shard, count, fingerprint, epoch, file_index, offset, into, served):
    return (b"\x01" + varint(shard) + varint(count) + struct.pack("<Q", fingerprint) +
            varint(epoch) + varint(file_index) + varint(offset) + varint(into) + varint(served))


def batch(dtype, rows, d_in, data, frontier):
    shape = varint(rows) + varint(d_in)
    return (field(1, 1, 0x1234abcd5678ef00) + field(2, 0, 7) + field(4, 0, dtype) +
            field(5, 2, shape) + field(6, 2, data) + field(7, 0, 4096) + field(8, 2, frontier) +
            field(9, 0, 1) + field(10, 0, 2))


def seeds_activation_batch():
    frontier = cursor(1, 2, 0xfeedface01234567, 0, 3, 1024, 17, 99)
    # WireDtype: 0 f32, 1 bf16, 2 f16 (proto/sae/v1/activations.proto).
    put("activation_batch", "f32", batch(0, 2, 3, f32([1, -2, 3.5, 0, 1e-8, -1e30]), frontier))
    put("activation_batch", "bf16", batch(1, 2, 2, b"\x80\x3f\x00\xc0\xc0\x7f\x80\x7f", frontier))
    put("activation_batch", "f16", batch(2, 1, 4, b"\x00\x3c\x00\xc0\x00\x7c\x01\x7e", frontier))
    put("activation_batch", "short-data", batch(0, 4, 4, f32([1, 2]), b""))


def encode(message, text):
    """The wire bytes of a sae.v1 message written in protobuf text format (protoc --encode)."""
    return subprocess.run(
        ["protoc", "--encode=sae.v1." + message, "-I", os.path.join(ROOT, "proto"),
         "sae/v1/controller.proto"], input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


# Verbs of fuzz/controller_fuzz.cc.
SUBMIT, GET, LIST, STOP, DELETE, REGISTER, BEAT, REPORT, TICK, UPLOAD, READ, REOPEN = range(12)


def records(*items):
    out = b""
    for verb, payload in items:
        out += bytes([verb]) + struct.pack("<H", len(payload)) + payload
    return out


def run_yaml(servers, trainers, steps):
    return ("model_path: /models/gpt2-tiny\ndataset_path: /data/corpus.txt\n"
            "hook_point: blocks.0.hook_resid_pre\nd_in: 64\nexpansion_factor: 2\n"
            "train_batch_size: 64\ntotal_training_tokens: %d\nlr_warm_up_steps: 0\n"
            "activation_servers: %d\ntrainers: %d\nmax_restarts: 2\n" % (steps * 64, servers, trainers)
            ).replace("\n", "\\n")  # a protobuf text-format string literal


def seeds_controller():
    server = (REGISTER, encode("RegisterWorkerRequest",
                               'role: WORKER_ROLE_ACTIVATION_SERVER address: "10.0.0.1:7001"'))
    trainer = (REGISTER, encode("RegisterWorkerRequest",
                                'role: WORKER_ROLE_TRAINER address: "10.0.0.2:29500" pid: 42'))
    submit = (SUBMIT, encode("SubmitRunRequest", 'config_yaml: "%s" name: "fuzz"' % run_yaml(1, 1, 10)))
    beat_server = (BEAT, encode("HeartbeatRequest", 'worker_id: "0"'))
    beat_trainer = (BEAT, encode("HeartbeatRequest", 'worker_id: "1"'))
    progress = (REPORT, encode("ReportProgressRequest",
                               'worker_id: "1" step: 5 tokens: 320 metrics { }'))
    cursor_report = (REPORT, encode("ReportProgressRequest",
                                    'worker_id: "0" tokens_generated: 640 shard_cursor: "\\001\\000\\001"'))
    upload = (UPLOAD, encode("UploadHeader", 'worker_id: "1" step: 10 tokens: 640 final: true'))
    finished = (REPORT, encode("ReportProgressRequest",
                               'worker_id: "1" outcome: OUTCOME_FINISHED checkpoint_step: 10'))
    put("controller", "finished-run", records(
        server, trainer, submit, beat_server, beat_trainer, progress, cursor_report, (TICK, b"\x02"),
        upload, finished, (GET, b""), (LIST, b""), (READ, b""), (REOPEN, b"")))
    put("controller", "lost-worker-restarts", records(
        server, trainer, submit, beat_server, beat_trainer, (TICK, b"\x05"), beat_server,
        (TICK, b"\x08"), (TICK, b"\x08"), trainer, beat_trainer, (REOPEN, b""), beat_trainer,
        (REPORT, encode("ReportProgressRequest", 'worker_id: "1" outcome: OUTCOME_FAILED error: "x"'))))
    put("controller", "stop-and-delete", records(
        submit, (SUBMIT, encode("SubmitRunRequest", 'config_yaml: "%s" validate_only: true'
                                % run_yaml(2, 2, 100))),
        (LIST, encode("ListRunsRequest", "states: RUN_STATE_PENDING")),
        (STOP, encode("StopRunRequest", 'reason: "enough"')), (DELETE, b""), (GET, b""),
        (UPLOAD, encode("UploadHeader", 'features: true step: 1')), (REOPEN, b"")))
    put("controller", "bad-yaml", records((SUBMIT, encode("SubmitRunRequest", 'config_yaml: "d_in: [1"'))))


if __name__ == "__main__":
    for target in ("safetensors", "run_config", "gpt2_config", "tokenizer", "dataset_bin",
                   "dataset_npy", "dataset_jsonl", "dataset_txt", "checkpoint_archive",
                   "saelens_cfg", "activation_batch", "controller"):
        folder = os.path.join(HERE, "corpus", target)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.startswith("seed-"):
                os.remove(os.path.join(folder, name))
    seeds_safetensors()
    seeds_run_config()
    seeds_gpt2_config()
    seeds_tokenizer()
    seeds_datasets()
    seeds_checkpoint_archive()
    seeds_saelens_cfg()
    seeds_activation_batch()
    seeds_controller()
