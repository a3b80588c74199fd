#!/usr/bin/env python3
"""Reference check: an lmforge `llama-*` style checkpoint loads in HF transformers'
LlamaForCausalLM, and its per-token log-probabilities equal `lmforge score` within 1e-4 (f32).

Run where PyTorch and transformers are installed (the GPU machine):
    python3 tests/reference/hf_llama_check.py --checkpoint RUN/checkpoints/step_N \
        --ids ids.txt --scores scores.jsonl
where scores.jsonl is the output of `lmforge score --checkpoint ... --ids ids.txt`.
Exits non-zero on any mismatch.
"""
import argparse
import json
import sys

import torch
from transformers import LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--ids", required=True)
ap.add_argument("--scores", required=True)
ap.add_argument("--tol", type=float, default=1e-4)
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
args = ap.parse_args()

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
model = LlamaForCausalLM.from_pretrained(args.checkpoint, torch_dtype=torch.float32).to(args.device).eval()
seqs = [[int(t) for t in line.split()] for line in open(args.ids) if line.strip()]
ours = [json.loads(line) for line in open(args.scores) if line.strip()]
assert len(seqs) == len(ours), f"{len(seqs)} sequences but {len(ours)} score lines"
worst = 0.0
n = 0
for ids, lp_ours in zip(seqs, ours):
    x = torch.tensor([ids], device=args.device)
    with torch.no_grad():
        logits = model(x).logits.float()
    logp = torch.log_softmax(logits[0, :-1], dim=-1)
    ref = logp.gather(1, x[0, 1:, None])[:, 0].cpu().tolist()
    assert len(ref) == len(lp_ours), f"{len(ref)} reference log-probs but {len(lp_ours)} from lmforge"
    for a, b in zip(ref, lp_ours):
        worst = max(worst, abs(a - b))
        n += 1
print(json.dumps({"tokens": n, "max_abs_diff": worst, "tol": args.tol}))
sys.exit(0 if worst <= args.tol else 1)
