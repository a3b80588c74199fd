"""CUDA-event timing shared by the PyTorch peer scripts of bench/: the mean milliseconds of
`iters` back-to-back calls of fn after one warm-up call."""
import torch


def time_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters
