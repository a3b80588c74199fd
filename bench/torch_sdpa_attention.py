# PyTorch's scaled_dot_product_attention on the shapes of bench_cuda_attention (causal bf16,
# B 4 x H 16 x T 2048, head dim 64 and 128), timed with CUDA events, for the side-by-side table of
# docs/BENCHMARKS.md "## CUDA". FLOPs as there: forward 4*B*H*T^2*D/2, backward 2.5x forward.
#
#   python3 bench/torch_sdpa_attention.py [--iters N]
import argparse

import torch
import torch.nn.functional as F

from cuda_events import time_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    iters = ap.parse_args().iters
    B, T, H = 4, 2048, 16
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| head dim | pass | ms | TFLOP/s |\n|---|---|---|---|")
    for D in (64, 128):
        q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        dout = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
        fwd_flops = 4.0 * B * H * T * T * D / 2

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def forward_backward():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), dout)

        f = time_ms(forward, iters)
        fb = time_ms(forward_backward, iters)
        b = fb - f
        print(f"| {D} | forward | {f:.3f} | {fwd_flops / (f * 1e9):.1f} |")
        print(f"| {D} | backward | {b:.3f} | {2.5 * fwd_flops / (b * 1e9):.1f} |")
        print(f"| {D} | forward+backward | {fb:.3f} | {3.5 * fwd_flops / (fb * 1e9):.1f} |")


if __name__ == "__main__":
    main()
