#!/usr/bin/env python3
"""Reference check: an lmforge checkpoint of a dense model with Multi-head Latent Attention
(model.attention = "mla"), exported as HF DeepSeek-V3 (DeepseekV3ForCausalLM), loads in HF
transformers and its per-token log-probabilities equal `lmforge score` within --tol (f32,
default 1e-4).

Run where PyTorch and transformers (>= 4.51, which has DeepSeek-V3; 5.x included) are installed,
from the repository root, with a built lmforge. One command per variant; each trains a small MLA
model with lmforge (random-pattern shards, 40 steps on the CPU), scores random sequences with
`lmforge score`, scores them again with transformers, and writes the result as JSON to --out:

    python3 tests/reference/hf_deepseek_v3_check.py --arch mla --lmforge build/lmforge --out hf_check_mla.json
    python3 tests/reference/hf_deepseek_v3_check.py --arch mla-noq --lmforge build/lmforge --out hf_check_mla_noq.json

`mla` compresses the query (q_lora_rank > 0: q_a_proj, q_a_layernorm, q_b_proj) and ties the
embeddings; `mla-noq` has no query compression (q_proj; HF's q_lora_rank = null) and an untied
output projection. An existing checkpoint can be checked instead:

    python3 tests/reference/hf_deepseek_v3_check.py --checkpoint RUN/checkpoints/step_N --lmforge build/lmforge \
        --out hf_check.json [--ids ids.txt]

Attention runs with attn_implementation="eager" by default (--attn to change it). Exits non-zero
on any mismatch, or if the export is not DeepseekV3ForCausalLM.
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

# Every width differs (q/k head 24 + 8 RoPE dims, value head 20) so a mixed-up split shows.
ARCHS = {
    "mla": {"model.q_lora_rank": "48", "model.tied_embeddings": "true"},
    "mla-noq": {"model.q_lora_rank": "0", "model.tied_embeddings": "false", "model.norm_eps": "1e-6",
                "model.rope_theta": "50000"},
}
COMMON = {"model.vocab_size": "512", "model.context_length": "64", "model.d_model": "64", "model.n_layers": "2",
          "model.n_heads": "4", "model.n_kv_heads": "0", "model.head_dim": "0", "model.d_ff": "176",
          "model.norm": "rmsnorm", "model.norm_position": "pre", "model.ffn": "swiglu", "model.position": "rope",
          "model.bias": "false", "model.qk_norm": "false", "model.attention": "mla", "model.kv_lora_rank": "32",
          "model.qk_nope_head_dim": "24", "model.qk_rope_head_dim": "8", "model.v_head_dim": "20",
          "model.init_std": "0.1", "train.steps": "40", "train.micro_batch_size": "4", "train.device": "cpu",
          "train.precision": "f32", "train.log_every": "10", "optim.lr": "3e-3", "optim.warmup_steps": "5",
          "eval.every": "0", "eval.max_batches": "2", "checkpoint.every": "0", "checkpoint.keep_last": "1"}


def train_small_model(arch, lmforge, work):
    return common.train_small_model(dict(COMMON, **ARCHS[arch]), lmforge, work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), help="train a small MLA model of this variant and check it")
    ap.add_argument("--checkpoint", help="check this checkpoint directory instead")
    ap.add_argument("--lmforge", default="build/lmforge", help="the lmforge binary")
    ap.add_argument("--out", required=True, help="where to write the result (JSON)")
    ap.add_argument("--ids", help="sequences to score, one per line (default: 8 random ones)")
    ap.add_argument("--work", help="working directory (default: a temporary one)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--attn", default="eager", help="HF attn_implementation (eager, sdpa)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if (args.arch is None) == (args.checkpoint is None):
        ap.error("give exactly one of --arch and --checkpoint")
    work = args.work or tempfile.mkdtemp(prefix="lmforge_hf_deepseek_v3_check_")
    os.makedirs(work, exist_ok=True)
    ckpt = args.checkpoint or train_small_model(args.arch, args.lmforge, work)

    with open(os.path.join(ckpt, "config.json")) as f:
        hf_config = json.load(f)
    architecture = (hf_config.get("architectures") or ["?"])[0]
    vocab, context = hf_config.get("vocab_size"), hf_config.get("max_position_embeddings")
    result = {"arch": args.arch, "checkpoint": ckpt, "architecture": architecture,
              "transformers": transformers.__version__, "torch": torch.__version__, "device": args.device,
              "attn_implementation": args.attn, "tol": args.tol,
              "mla": {k: hf_config.get(k) for k in ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                                                    "qk_rope_head_dim", "v_head_dim", "first_k_dense_replace",
                                                    "rope_interleave", "tie_word_embeddings")}}
    problems = []
    if architecture != "DeepseekV3ForCausalLM":
        problems.append(f"config.json names {architecture}, expected DeepseekV3ForCausalLM (a dense MLA model)")
    elif hf_config.get("first_k_dense_replace") != hf_config.get("num_hidden_layers"):
        problems.append("the export has MoE layers; this check covers dense MLA models")

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
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, attn_implementation=args.attn)
        model = model.float().to(args.device).eval()
        result["loaded_as"] = type(model).__name__
        if result["loaded_as"] != "DeepseekV3ForCausalLM":
            problems.append(f"transformers loaded {result['loaded_as']}")
        # Every tensor of the export must have been used: a name HF does not know would be
        # dropped with a warning and the layer left at its random initialisation.
        from safetensors import safe_open
        with safe_open(os.path.join(ckpt, "model.safetensors"), framework="pt") as st:
            exported = set(st.keys())
        expected = set(model.state_dict().keys())
        if hf_config.get("tie_word_embeddings"):
            expected.discard("lm_head.weight")
        if exported != expected:
            problems.append(f"tensor names differ: only in the export {sorted(exported - expected)[:8]}, "
                            f"only in HF {sorted(expected - exported)[:8]}")
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
