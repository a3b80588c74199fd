"""The harness the HF reference checks share (hf_moe_check.py): train a small model with lmforge
on a learnable token stream, write random sequences, score them with `lmforge score` and with an
HF transformers model, and compare the per-token log-probabilities.

Only the standard library is imported here; torch is imported by compare_log_probs' caller and
passed in through the model.
"""
import json
import os
import random
import struct
import subprocess
import sys

# The training settings every check shares (the [model] keys of each variant come on top).
COMMON = {"model.vocab_size": "512", "model.context_length": "64", "model.d_model": "64", "model.n_layers": "2",
          "model.n_heads": "4", "model.norm": "rmsnorm", "model.norm_position": "pre", "model.ffn": "swiglu",
          "model.position": "rope", "model.bias": "false", "model.init_std": "0.1", "train.steps": "40",
          "train.micro_batch_size": "4", "train.device": "cpu", "train.precision": "f32", "train.log_every": "10",
          "optim.lr": "3e-3", "optim.warmup_steps": "5", "eval.every": "0", "eval.max_batches": "2",
          "checkpoint.every": "0", "checkpoint.keep_last": "1"}


def write_shard(path, ids, vocab):
    """A token shard (docs/FORMATS.md): 256 int32 header words, then uint16 ids."""
    header = [0] * 256
    header[0], header[1], header[2] = 0x53464D4C, 1, 2
    header[3], header[4] = len(ids) & 0xFFFFFFFF, len(ids) >> 32
    header[5], header[6], header[9] = vocab, -1, 1024
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(ids)}H", *ids))


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr)
    # Passive OpenMP waiting: several checks run side by side would otherwise spin on each
    # other's cores.
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def train_small_model(sets, lmforge, work):
    """Trains COMMON + `sets` (--set keys) on a repeating pattern with noise, so training moves
    the weights far from their initialisation; returns the newest checkpoint directory."""
    sets = dict(COMMON, **sets)
    vocab = int(sets["model.vocab_size"])
    rng = random.Random(1234)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    pattern = [rng.randrange(vocab) for _ in range(97)]
    stream = [pattern[i % 97] if rng.random() < 0.8 else rng.randrange(vocab) for i in range(60000)]
    write_shard(os.path.join(data, "train_000000.bin"), stream[:50000], vocab)
    write_shard(os.path.join(data, "val_000000.bin"), stream[50000:], vocab)
    sets["data.path"] = data
    sets["train.out_dir"] = os.path.join(work, "run")
    cmd = [lmforge, "train", "--config", os.path.join(repo_root(), "configs", "quickstart.toml")]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    run(cmd)
    ckpts = os.path.join(work, "run", "checkpoints")
    return os.path.join(ckpts, sorted(os.listdir(ckpts), key=lambda s: int(s.split("_")[-1]))[-1])


def write_random_ids(path, vocab, context, seed=99):
    """Eight sequences of lengths from 2 to context + 1 (the last position past the context is
    scored too, as `lmforge score` does)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for n in (2, 5, 17, context // 2, context, context + 1, 33, 64):
            n = min(n, context + 1)
            f.write(" ".join(str(rng.randrange(vocab)) for _ in range(n)) + "\n")


def lmforge_log_probs(lmforge, checkpoint, ids_path):
    """`lmforge score` of every sequence (f32 on the CPU): one list of log-probs per line."""
    out = run([lmforge, "score", "--checkpoint", checkpoint, "--ids", ids_path, "--device", "cpu",
               "--precision", "f32"])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def compare_log_probs(torch, model, ids_path, ours, device, problems):
    """The HF model's log-probabilities of each next token against `ours`; returns (worst
    |difference|, tokens compared) and appends what does not line up to `problems`."""
    seqs = [[int(t) for t in line.split()] for line in open(ids_path) if line.strip()]
    if len(seqs) != len(ours):
        problems.append(f"{len(seqs)} sequences but {len(ours)} score lines from lmforge")
    worst, tokens = 0.0, 0
    for ids, lp_ours in zip(seqs, ours):
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            logits = model(x).logits.double()
        logp = torch.log_softmax(logits[0, :-1], dim=-1)
        ref = logp.gather(1, x[0, 1:, None])[:, 0].cpu().tolist()
        if len(ref) != len(lp_ours):
            problems.append(f"{len(ref)} reference log-probs but {len(lp_ours)} from lmforge")
            continue
        for a, b in zip(ref, lp_ours):
            worst = max(worst, abs(a - b))
            tokens += 1
    return worst, tokens


def write_result(path, result):
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result))
