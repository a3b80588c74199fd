"""The GEMMs of bench_cuda_gemm through PyTorch (bf16, CUDA events), for side-by-side numbers:
forward F.linear(x, w), input grad dy @ w, weight grad dy.t() @ x; for gpt2 also F.linear with
the bias and, for the up projection, followed by tanh-GELU (eager: a separate kernel).

    python3 bench/torch_gemm_shapes.py [--iters N]
"""
import argparse

import torch
import torch.nn.functional as F

from cuda_events import time_ms

SHAPES = [
    ("gpt2", "qkv", 65536, 768, 2304), ("gpt2", "o_proj", 65536, 768, 768),
    ("gpt2", "up", 65536, 768, 3072), ("gpt2", "down", 65536, 3072, 768),
    ("gpt2", "lm_head", 65536, 768, 50304), ("llama", "qkv", 32768, 1024, 1536),
    ("llama", "o_proj", 32768, 1024, 1024), ("llama", "gate|up", 32768, 1024, 2816),
    ("llama", "down", 32768, 2816, 1024), ("llama", "lm_head", 32768, 1024, 32000),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    print("| model | layer | rows x in -> out | pass | ms | TFLOP/s |\n|---|---|---|---|---|---|")
    for model, layer, rows, k, n in SHAPES:
        x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(rows, n, device="cuda", dtype=torch.bfloat16)
        flops = 2.0 * rows * k * n
        b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        passes = [("forward", lambda: F.linear(x, w)), ("input grad", lambda: dy @ w),
                  ("weight grad", lambda: dy.t() @ x)]
        if model == "gpt2":
            passes.append(("forward + bias", lambda: F.linear(x, w, b)))
            if layer == "up":
                passes.append(("forward + bias + gelu", lambda: F.gelu(F.linear(x, w, b), approximate="tanh")))
        for name, fn in passes:
            ms = time_ms(fn, a.iters)
            print(f"| {model} | {layer} | {rows} x {k} -> {n} | {name} | {ms:.3f} | {flops / (ms * 1e9):.1f} |")


if __name__ == "__main__":
    main()
