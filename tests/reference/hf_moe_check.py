#!/usr/bin/env python3
"""Reference check: a Mixture-of-Experts (or multi-token prediction) model trained with lmforge
and written by `lmforge export --format hf` loads in HF transformers as MixtralForCausalLM,
Qwen3MoeForCausalLM or DeepseekV3ForCausalLM, and its per-token log-probabilities equal
`lmforge score` of the checkpoint within --tol (f32, default 1e-4).

Run where PyTorch and transformers (5.x: MoE experts are fused from the per-expert Hub layout
while loading; 4.51+ reads the same files) are installed, from the repository root, with a
built lmforge. One command per variant; each trains a small model with lmforge (a repeating
token pattern with noise, 40 steps on the CPU), exports it, scores random sequences with
`lmforge score` and again with transformers, and writes the result as JSON to --out:

    python3 tests/reference/hf_moe_check.py --arch mixtral --lmforge build/lmforge --out hf_check_mixtral.json
    python3 tests/reference/hf_moe_check.py --arch qwen3-moe --lmforge build/lmforge --out hf_check_qwen3_moe.json
    python3 tests/reference/hf_moe_check.py --arch deepseek-v3-moe --lmforge build/lmforge --out hf_check_dsv3_moe.json
    python3 tests/reference/hf_moe_check.py --arch deepseek-v3-mtp --lmforge build/lmforge --out hf_check_dsv3_mtp.json

  mixtral          every layer MoE (4 experts, top-2, softmax renormalised), GQA, untied
  qwen3-moe        QK-norm, head_dim 24, MoE in layers 1 and 3 of 4 (decoder_sparse_step 2),
                   6 experts top-2 without renormalisation (norm_topk_prob false)
  deepseek-v3-moe  MLA with query compression, a dense first layer (first_k_dense_replace 1), 4
                   routed experts top-2 by sigmoid, one shared expert, auxiliary-loss-free balancing
                   (the trained e_score_correction_bias must be nonzero, so it takes part)
  deepseek-v3-mtp  MLA without query compression, every layer MoE, 2 MTP modules (stored as layers
                   num_hidden_layers and num_hidden_layers + 1, which HF's model does not read)

An existing checkpoint can be checked instead (it is exported into --work first):

    python3 tests/reference/hf_moe_check.py --checkpoint RUN/checkpoints/step_N --lmforge build/lmforge \
        --out hf_check.json [--ids ids.txt]

Beyond the log-probabilities, the loading report of transformers must show no missing or
mismatched tensor and no unexpected one except those of the MTP layers. Attention runs with
attn_implementation="eager" by default (--attn to change it). Exits non-zero on any mismatch.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_check_common as common  # noqa: E402

# DeepSeek-V3 variants: every width differs (q/k heads 24 + 8 RoPE dims, value heads 20) so a
# mixed-up split shows.
MLA = {"model.attention": "mla", "model.n_kv_heads": "0", "model.kv_lora_rank": "32",
       "model.qk_nope_head_dim": "24", "model.qk_rope_head_dim": "8", "model.v_head_dim": "20",
       "model.router": "sigmoid_topk", "model.d_ff": "176"}
ARCHS = {
    "mixtral": {"expect": "MixtralForCausalLM",
                "set": {"model.n_kv_heads": "2", "model.tied_embeddings": "false", "model.n_experts": "4",
                        "model.d_ff_expert": "48", "model.top_k": "2", "model.router": "softmax_topk",
                        "model.normalize_gates": "true", "model.moe_layers": "all", "model.balance_loss": "0.01"}},
    "qwen3-moe": {"expect": "Qwen3MoeForCausalLM",
                  "set": {"model.n_layers": "4", "model.n_kv_heads": "2", "model.qk_norm": "true",
                          "model.head_dim": "24", "model.tied_embeddings": "false", "model.norm_eps": "1e-6",
                          "model.rope_theta": "1000000", "model.d_ff": "176", "model.n_experts": "6",
                          "model.d_ff_expert": "32", "model.top_k": "2", "model.router": "softmax_topk",
                          "model.normalize_gates": "false", "model.moe_layers": "every:2",
                          "model.balance_loss": "0.01"}},
    "deepseek-v3-moe": {"expect": "DeepseekV3ForCausalLM",
                        "set": dict(MLA, **{"model.n_layers": "3", "model.q_lora_rank": "48",
                                            "model.tied_embeddings": "true", "model.n_experts": "4",
                                            "model.d_ff_expert": "32", "model.top_k": "2",
                                            "model.n_shared_experts": "1", "model.moe_layers": "after:1",
                                            "model.bias_update_rate": "0.01"}),
                        "bias": True},
    "deepseek-v3-mtp": {"expect": "DeepseekV3ForCausalLM",
                        "set": dict(MLA, **{"model.n_layers": "2", "model.q_lora_rank": "0",
                                            "model.tied_embeddings": "false", "model.n_experts": "4",
                                            "model.d_ff_expert": "32", "model.top_k": "2",
                                            "model.n_shared_experts": "1", "model.moe_layers": "all",
                                            "model.bias_update_rate": "0.01", "model.mtp_depth": "2",
                                            "model.norm_eps": "1e-6", "model.rope_theta": "50000"}),
                        "bias": True, "mtp": 2},
}
MOE_CLASSES = ("MixtralForCausalLM", "Qwen3MoeForCausalLM", "DeepseekV3ForCausalLM")


def layer_index(name):
    m = re.match(r"model\.layers\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def check_export_tensors(export, hf_config, variant, problems, result):
    """What the export's tensors must hold, read with safetensors (no model involved)."""
    from safetensors import safe_open
    n = hf_config["num_hidden_layers"]
    with safe_open(os.path.join(export, "model.safetensors"), framework="pt") as st:
        names = set(st.keys())
        if variant.get("bias"):
            biases = [st.get_tensor(k) for k in sorted(names) if k.endswith("mlp.gate.e_score_correction_bias")
                      and layer_index(k) < n]
            result["max_abs_expert_bias"] = max(float(b.abs().max()) for b in biases) if biases else None
            if not biases or all(float(b.abs().max()) == 0 for b in biases):
                problems.append("the balancing bias is zero in every layer: the check would not cover it")
        depth = variant.get("mtp", 0)
        result["mtp_layers"] = sorted({layer_index(k) for k in names if layer_index(k) is not None
                                       and layer_index(k) >= n})
        if hf_config.get("num_nextn_predict_layers", 0) != depth:
            problems.append(f"num_nextn_predict_layers is {hf_config.get('num_nextn_predict_layers')}, "
                            f"expected {depth}")
        if result["mtp_layers"] != list(range(n, n + depth)):
            problems.append(f"MTP layers {result['mtp_layers']}, expected {list(range(n, n + depth))}")
        embed = st.get_tensor("model.embed_tokens.weight")
        head = st.get_tensor("lm_head.weight") if "lm_head.weight" in names else embed
        for i in range(n, n + depth):
            p = f"model.layers.{i}."
            for part in ("enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight",
                         "self_attn.kv_a_proj_with_mqa.weight", "mlp.gate.weight"):
                if p + part not in names:
                    problems.append(f"{p + part} is missing from the export")
            if not torch.equal(st.get_tensor(p + "embed_tokens.weight"), embed):
                problems.append(f"{p}embed_tokens.weight differs from model.embed_tokens.weight")
            if not torch.equal(st.get_tensor(p + "shared_head.head.weight"), head):
                problems.append(f"{p}shared_head.head.weight differs from the output head")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), help="train a small model of this variant and check it")
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
    work = args.work or tempfile.mkdtemp(prefix="lmforge_hf_moe_check_")
    os.makedirs(work, exist_ok=True)
    variant = ARCHS[args.arch] if args.arch else {}
    ckpt = args.checkpoint or common.train_small_model(variant["set"], args.lmforge, work)
    export = os.path.join(work, "export")
    shutil.rmtree(export, ignore_errors=True)  # a --work directory used before
    common.run([args.lmforge, "export", ckpt, "--output", export, "--format", "hf"])

    with open(os.path.join(export, "config.json")) as f:
        hf_config = json.load(f)
    architecture = (hf_config.get("architectures") or ["?"])[0]
    vocab, context = hf_config.get("vocab_size"), hf_config.get("max_position_embeddings")
    result = {"arch": args.arch, "checkpoint": ckpt, "export": export, "architecture": architecture,
              "transformers": transformers.__version__, "torch": torch.__version__, "device": args.device,
              "attn_implementation": args.attn, "tol": args.tol,
              "moe": {k: hf_config.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts",
                                                    "num_experts_per_tok", "n_shared_experts", "norm_topk_prob",
                                                    "decoder_sparse_step", "mlp_only_layers",
                                                    "first_k_dense_replace", "num_nextn_predict_layers")}}
    problems = []
    if variant and architecture != variant["expect"]:
        problems.append(f"config.json names {architecture}, expected {variant['expect']}")
    if architecture not in MOE_CLASSES:
        problems.append(f"{architecture} is not an HF architecture this check covers")
    if variant and not problems:
        check_export_tensors(export, hf_config, variant, problems, result)

    ids_path = args.ids
    if ids_path is None and not problems:
        ids_path = os.path.join(work, "ids.txt")
        common.write_random_ids(ids_path, vocab, context)

    worst, tokens = 0.0, 0
    if not problems:
        ours = common.lmforge_log_probs(args.lmforge, ckpt, ids_path)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model, info = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32, attn_implementation=args.attn,
                                                           output_loading_info=True)
        model = model.float().to(args.device).eval()
        result["loaded_as"] = type(model).__name__
        if result["loaded_as"] != architecture:
            problems.append(f"transformers loaded {result['loaded_as']}")
        # A tensor HF expects but the export lacks would stay at its random initialisation; one the
        # export has but HF does not know would be dropped. Only the MTP layers may be unread.
        n = hf_config["num_hidden_layers"]
        missing = sorted(info.get("missing_keys", []))
        unexpected = sorted(k for k in info.get("unexpected_keys", [])
                            if layer_index(k) is None or layer_index(k) < n)
        mismatched = [str(m) for m in info.get("mismatched_keys", [])]
        result["loading"] = {"missing": missing[:8], "unexpected_outside_mtp": unexpected[:8],
                             "mismatched": mismatched[:8],
                             "unexpected_mtp": len(info.get("unexpected_keys", [])) - len(unexpected)}
        if missing or unexpected or mismatched:
            problems.append(f"loading report: missing {missing[:8]}, unexpected {unexpected[:8]}, "
                            f"mismatched {mismatched[:8]}")
        if variant.get("bias"):
            # The balancing bias reached HF's router (a buffer, loaded like a weight).
            layer = model.model.layers[hf_config["first_k_dense_replace"]]
            if float(layer.mlp.gate.e_score_correction_bias.abs().max()) == 0:
                problems.append("HF's e_score_correction_bias is zero after loading")
        worst, tokens = common.compare_log_probs(torch, model, ids_path, ours, args.device, problems)
        if worst > args.tol:
            problems.append(f"max |log p difference| {worst:.3g} exceeds {args.tol}")
    result.update({"tokens": tokens, "max_abs_diff": worst, "passed": not problems, "problems": problems})
    common.write_result(args.out, result)
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
