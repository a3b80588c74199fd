#!/usr/bin/env python3
"""Reference check: an lmforge checkpoint exported as HF Llama (LlamaForCausalLM) or Qwen3
(Qwen3ForCausalLM: Llama plus QK-norm) loads in HF transformers, and its per-token
log-probabilities equal `lmforge score` within --tol (f32, default 1e-4).

Run where PyTorch and transformers (>= 4.51 for Qwen3) are installed, from the repository root,
with a built lmforge. One command per architecture; each trains a small model with lmforge
(random-token shards, 40 steps on the CPU), scores random sequences with `lmforge score`, scores
them again with transformers, and writes the result as JSON to --out:

    python3 tests/reference/hf_llama_check.py --arch llama --lmforge build/lmforge --out hf_check_llama.json
    python3 tests/reference/hf_llama_check.py --arch qwen3 --lmforge build/lmforge --out hf_check_qwen3.json

An existing checkpoint can be checked instead (its config.json names the architecture):

    python3 tests/reference/hf_llama_check.py --checkpoint RUN/checkpoints/step_N --lmforge build/lmforge \
        --out hf_check.json [--ids ids.txt]

Exits non-zero on any mismatch (or if the export is not the expected HF architecture).
"""
import argparse
import json
import os
import random
import sys
import tempfile

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_check_common as common  # noqa: E402  (the shared harness: shards, training, `lmforge score`)

# The small models each --arch trains: both GQA; qwen3 also with a head_dim that is not
# d_model / n_heads and untied embeddings, as Qwen3 models have.
ARCHS = {
    "llama": {"expect": "LlamaForCausalLM",
              "set": {"model.qk_norm": "false", "model.tied_embeddings": "true"}},
    "qwen3": {"expect": "Qwen3ForCausalLM",
              "set": {"model.qk_norm": "true", "model.head_dim": "24", "model.tied_embeddings": "false",
                      "model.norm_eps": "1e-6", "model.rope_theta": "1000000"}},
}
COMMON = {"model.vocab_size": "512", "model.context_length": "64", "model.d_model": "64", "model.n_layers": "2",
          "model.n_heads": "4", "model.n_kv_heads": "2", "model.d_ff": "176", "model.norm": "rmsnorm",
          "model.norm_position": "pre", "model.ffn": "swiglu", "model.position": "rope", "model.bias": "false",
          "model.init_std": "0.1", "train.steps": "40", "train.micro_batch_size": "4", "train.device": "cpu",
          "train.precision": "f32", "train.log_every": "10", "optim.lr": "3e-3", "optim.warmup_steps": "5",
          "eval.every": "0", "eval.max_batches": "2", "checkpoint.every": "0", "checkpoint.keep_last": "1"}


def train_small_model(arch, lmforge, work):
    return common.train_small_model(dict(COMMON, **ARCHS[arch]["set"]), lmforge, work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), help="train a small model of this architecture and check it")
    ap.add_argument("--checkpoint", help="check this checkpoint directory instead")
    ap.add_argument("--lmforge", default="build/lmforge", help="the lmforge binary")
    ap.add_argument("--out", required=True, help="where to write the result (JSON)")
    ap.add_argument("--ids", help="sequences to score, one per line (default: 8 random ones)")
    ap.add_argument("--work", help="working directory (default: a temporary one)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if (args.arch is None) == (args.checkpoint is None):
        ap.error("give exactly one of --arch and --checkpoint")
    work = args.work or tempfile.mkdtemp(prefix="lmforge_hf_check_")
    os.makedirs(work, exist_ok=True)
    ckpt = args.checkpoint or train_small_model(args.arch, args.lmforge, work)

    with open(os.path.join(ckpt, "config.json")) as f:
        hf_config = json.load(f)
    architecture = (hf_config.get("architectures") or ["?"])[0]
    vocab, context = hf_config.get("vocab_size"), hf_config.get("max_position_embeddings")
    result = {"arch": args.arch, "checkpoint": ckpt, "architecture": architecture,
              "transformers": transformers.__version__, "torch": torch.__version__, "device": args.device,
              "tol": args.tol}
    expect = ARCHS[args.arch]["expect"] if args.arch else None
    problems = []
    if expect and architecture != expect:
        problems.append(f"config.json names {architecture}, expected {expect}")
    if architecture not in ("LlamaForCausalLM", "Qwen3ForCausalLM"):
        problems.append(f"{architecture} is not an HF architecture this check covers")

    ids_path = args.ids
    if ids_path is None and not problems:
        rng = random.Random(99)
        ids_path = os.path.join(work, "ids.txt")
        with open(ids_path, "w") as f:
            for n in (2, 5, 17, context // 2, context, context + 1, 33, 64):
                n = min(n, context + 1)
                f.write(" ".join(str(rng.randrange(vocab)) for _ in range(n)) + "\n")

    worst, tokens = 0.0, 0
    if not problems:
        ours = common.lmforge_log_probs(args.lmforge, ckpt, ids_path)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # `dtype` (transformers >= 4.56; older versions take it as a config attribute and load the
        # f32 weights as f32 anyway), then .float() to be sure.
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).float().to(args.device).eval()
        result["loaded_as"] = type(model).__name__
        worst, tokens = common.compare_log_probs(torch, model, ids_path, ours, args.device, problems)
        if worst > args.tol:
            problems.append(f"max |log p difference| {worst:.3g} exceeds {args.tol}")
    result.update({"tokens": tokens, "max_abs_diff": worst, "passed": not problems, "problems": problems})
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
