"""Summarises a trace of bench/trace/cuda_trace.cpp: per training step (the stretch between two
launches of the optimizer's kernel), the GPU's busy and idle time, the longest idle gaps with the
kernels around them, and the kernel time per family.

    python3 bench/trace/summary.py trace.csv [--marker adamw_multi_kernel] [--steps 3]

--marker names the kernel that starts each step: lmforge's AdamW (adamw_multi_kernel, the
default) or PyTorch's fused AdamW (fused_adamw). The last --steps complete steps are summarised.
"""
import argparse
import collections
import re

FAMILIES = [  # first match wins
    ("GEMMs", r"nvjet|xmma|cublas|gemm|splitK"),
    ("attention", r"attention|sdpa|dot_do|convert_dq"),
    ("norms", r"norm|column_sum"),
    ("cross-entropy", r"loss_cu|log_softmax|nll"),
    ("GELU / SwiGLU / RoPE", r"gelu|swiglu|silu|rope|cat_mul"),
    ("optimizer", r"adamw|Foreach|multi_tensor|lpnorm"),
    ("embedding", r"index|embedding|radix"),
    ("copies, casts, elementwise", r"copy|elementwise|to_copy|triton_poi|triton_red|triton_per"),
]


def load(path):
    events = []
    for line in open(path):
        kind, start, end, _stream, _a, _b, name = line.rstrip("\n").split(",", 6)
        if kind in "KCM":
            events.append((int(start), int(end), name if kind == "K" else {"C": "memcpy", "M": "memset"}[kind]))
    events.sort()
    return events


def short(name):
    """The kernel's own name out of an Itanium-mangled one (length-prefixed identifiers)."""
    if not name.startswith("_Z"):
        return name[:60]
    idents, i = [], 0
    while i < len(name):
        m = re.match(r"\d+", name[i:])
        if not m:
            i += 1
            continue
        n, i = int(m.group()), i + len(m.group())
        idents.append(name[i:i + n])
        i += n
    kernels = [x for x in idents if "kernel" in x.lower()]
    return (kernels or idents or [name])[-1][:60]


def family(name):
    for fam, pattern in FAMILIES:
        if re.search(pattern, name):
            return fam
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--marker", default="adamw_multi_kernel")
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    ev = load(a.trace)
    hits = [i for i, e in enumerate(ev) if a.marker in e[2]]
    starts = [i for j, i in enumerate(hits) if j == 0 or i - hits[j - 1] > 5]  # one step may launch it several times
    if len(starts) < 2:
        raise SystemExit(f"fewer than two launches of {a.marker} in {a.trace}")
    bounds = list(zip(starts, starts[1:]))[-a.steps:]
    fam_total = collections.Counter()
    for lo, hi in bounds:
        span = ev[hi][0] - ev[lo][0]
        busy, cur, gaps = 0, ev[lo][0], []
        for i in range(lo, hi):
            s, e, _ = ev[i]
            if s > cur:
                gaps.append((s - cur, i))
            busy += max(0, e - max(s, cur))
            cur = max(cur, e)
            fam_total[family(ev[i][2])] += e - s
        small = sum(g for g, _ in gaps if g <= 10_000)
        print(f"step: {span / 1e6:.2f} ms, GPU busy {busy / 1e6:.2f} ms, idle {(span - busy) / 1e6:.2f} ms "
              f"({small / 1e6:.2f} ms in {sum(1 for g, _ in gaps if g <= 10_000)} gaps of 10 us or less)")
        for g, i in sorted(gaps, reverse=True)[:5]:
            print(f"  {g / 1e3:7.1f} us idle after {short(ev[i - 1][2])}, before {short(ev[i][2])}")
    n = len(bounds)
    print(f"kernel time per step, mean of {n} steps (ms):")
    for fam, t in fam_total.most_common():
        print(f"  {t / n / 1e6:8.2f}  {fam}")


if __name__ == "__main__":
    main()
