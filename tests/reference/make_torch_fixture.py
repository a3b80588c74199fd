#!/usr/bin/python3
"""Writes the whole-model reference fixtures that tests/reference/torch_fixture_test.cpp checks
lmforge against, computed independently with plain PyTorch (no transformers).

Regenerate (Debian 12: `apt-get install python3-torch`; the system Python, which has it):
    /usr/bin/python3 tests/reference/make_torch_fixture.py [--out tests/fixtures/torch_reference]

The fixtures are committed, so the C++ test (and CI) needs no PyTorch. The output is a pure
function of this file (fixed seeds; every value computed in f64 on the CPU), so regenerating
without changing it rewrites identical bytes.

For each architecture variant below, a 2-layer model (vocab 64, d_model 32, T 8, batch 2) is
written to <out>/<variant>/:
    model.safetensors      the initial weights, f32, under lmforge's parameter names
                           (nn/transformer.h), so lmforge's checkpoint loader reads them as they are
    reference.safetensors  input_ids, targets [B, T] i64; and, all f64:
                             logits [B, T, V]; loss [] (mean cross-entropy + z-loss);
                             grad.<param>          d loss / d param at the initial weights;
                             step_loss [3], step_grad_norm [3]  the loss and the global gradient
                               norm (before clipping) at each of three optimizer steps;
                             after_steps.<param>   the parameters after the three steps
    fixture.json           the model config (lmforge's [model] keys) and the optimizer settings

The model follows lmforge's definitions (src/nn/, src/ops/nn_ops.cpp, src/backend/cpu/):
  * ids -> embed_tokens (+ embed_positions[t] with learned positions) -> blocks -> model.norm
    (pre-norm only) -> logits = h · W_outᵀ, W_out = lm_head.weight or, tied, the token embedding.
  * pre-norm block:  x += attn(input_layernorm(x));  x += mlp(post_attention_layernorm(x))
    post-norm block: x = input_layernorm(x + attn(x)); x = post_attention_layernorm(x + mlp(x))
  * RMSNorm y = x / sqrt(mean(x²) + eps) · w; LayerNorm y = (x - mean) / sqrt(var + eps) · w + b
    (population variance; the bias only with model.bias). eps = model.norm_eps.
  * attention: q, k, v = linear projections viewed [B, T, heads, head_dim]; QK-norm is an RMSNorm
    (weight, no bias, eps = norm_eps) over each head vector, before RoPE; RoPE is half-split
    (HF rotate_half: pairs (i, i + D/2), angle pos · theta^(-2i/D)); scores scaled 1/sqrt(D),
    causal; query head h reads key/value head h / (n_heads / n_kv_heads).
  * MLP: SwiGLU down(silu(gate(x)) · up(x)), or GELU down(gelu_tanh(up(x))).
  * loss = mean over tokens of (logsumexp(z) - z_target + z_loss · logsumexp(z)²).
  * optimizer: torch.nn.utils.clip_grad_norm_ (global L2 norm, scale max_norm / (norm + 1e-6)
    when above max_norm), then torch.optim.AdamW (decoupled decay p -= lr·wd·p). As in lmforge
    (src/optim/adamw.cpp) only projection matrices (*_proj.weight, lm_head.weight) decay; norms,
    biases and embeddings (a tied output projection is the embedding) do not. Each step
    recomputes loss and gradients on the same batch at the current parameters, with its own
    learning rate (fixture.json "lr").
"""
import argparse
import json
import math
import os
import struct

import torch

B, T = 2, 8

BASE = dict(vocab_size=64, context_length=16, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4, head_dim=8,
            d_ff=64, norm="rmsnorm", norm_position="pre", ffn="swiglu", position="rope", rope_theta=10000.0,
            bias=False, qk_norm=False, z_loss=0.0, tied_embeddings=True, norm_eps=1e-5)

# Together the variants take every value of every architecture switch at least once.
VARIANTS = {
    "llama": dict(),
    "gpt2": dict(norm="layernorm", ffn="gelu", position="learned", bias=True),
    "qwen3_gqa_zloss": dict(n_kv_heads=2, head_dim=16, qk_norm=True, z_loss=0.1, tied_embeddings=False,
                            rope_theta=1e6, norm_eps=1e-6),
    "post_layernorm_mqa": dict(norm="layernorm", norm_position="post", ffn="gelu", bias=True, n_kv_heads=1,
                               tied_embeddings=False, z_loss=0.05),
    "post_rmsnorm_learned_gqa": dict(norm_position="post", position="learned", bias=True, n_kv_heads=2,
                                     qk_norm=True),
    "pre_layernorm_nobias_mqa": dict(norm="layernorm", n_kv_heads=1, tied_embeddings=False, d_ff=48),
}

OPTIM = dict(lr=[1e-2, 6e-3, 3e-3], beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def parameter_shapes(c):
    """(name, shape, kind) in lmforge's registration order (nn/transformer.cpp, block.cpp, ...)."""
    d, hd, kvd, f = c["d_model"], c["n_heads"] * c["head_dim"], c["n_kv_heads"] * c["head_dim"], c["d_ff"]
    out = [("model.embed_tokens.weight", (c["vocab_size"], d), "embedding")]
    if c["position"] == "learned":
        out.append(("model.embed_positions.weight", (c["context_length"], d), "embedding"))

    def linear(name, n_in, n_out):
        out.append((name + ".weight", (n_out, n_in), "matrix"))
        if c["bias"]:
            out.append((name + ".bias", (n_out,), "bias"))

    def norm(name):
        out.append((name + ".weight", (d,), "norm"))
        if c["norm"] == "layernorm" and c["bias"]:
            out.append((name + ".bias", (d,), "bias"))

    for i in range(c["n_layers"]):
        p = f"model.layers.{i}."
        linear(p + "self_attn.q_proj", d, hd)
        linear(p + "self_attn.k_proj", d, kvd)
        linear(p + "self_attn.v_proj", d, kvd)
        linear(p + "self_attn.o_proj", hd, d)
        if c["qk_norm"]:
            out.append((p + "self_attn.q_norm.weight", (c["head_dim"],), "norm"))
            out.append((p + "self_attn.k_norm.weight", (c["head_dim"],), "norm"))
        if c["ffn"] == "swiglu":
            linear(p + "mlp.gate_proj", d, f)
        linear(p + "mlp.up_proj", d, f)
        linear(p + "mlp.down_proj", f, d)
        norm(p + "input_layernorm")
        norm(p + "post_attention_layernorm")
    if c["norm_position"] == "pre":
        norm("model.norm")
    if not c["tied_embeddings"]:
        out.append(("lm_head.weight", (c["vocab_size"], d), "matrix"))
    return out


def initial_weights(c, gen):
    """f32 values chosen so every part matters: gains near 1, nonzero biases, logits far from uniform."""
    w = {}
    for name, shape, kind in parameter_shapes(c):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        w[name] = {"norm": 1.0 + 0.1 * r, "bias": 0.1 * r}.get(kind, 0.2 * r)
    return w


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps) * w
    return y + b if b is not None else y


def rope_half_split(x, theta):
    """x [B, T, H, D]: rotates pairs (i, i + D/2) by pos · theta^(-2i/D)."""
    t, dim = x.shape[1], x.shape[3]
    half = dim // 2
    inv_freq = torch.tensor([theta ** (-2.0 * i / dim) for i in range(half)], dtype=torch.float64)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = ang.cos()[None, :, None, :].to(x.dtype), ang.sin()[None, :, None, :].to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def forward_logits(c, p, ids):
    """ids [B, T] -> logits [B, T, V], with p the parameters by name."""
    eps = c["norm_eps"]

    def lin(name, x):
        y = x @ p[name + ".weight"].t()
        return y + p[name + ".bias"] if c["bias"] else y

    def norm(name, x):
        if c["norm"] == "rmsnorm":
            return rms_norm(x, p[name + ".weight"], eps)
        return layer_norm(x, p[name + ".weight"], p.get(name + ".bias"), eps)

    def attention(pre, x):
        b, t, _ = x.shape
        nh, nkv, hd = c["n_heads"], c["n_kv_heads"], c["head_dim"]
        q = lin(pre + "q_proj", x).view(b, t, nh, hd)
        k = lin(pre + "k_proj", x).view(b, t, nkv, hd)
        v = lin(pre + "v_proj", x).view(b, t, nkv, hd)
        if c["qk_norm"]:
            q = rms_norm(q, p[pre + "q_norm.weight"], eps)
            k = rms_norm(k, p[pre + "k_norm.weight"], eps)
        if c["position"] == "rope":
            q, k = rope_half_split(q, c["rope_theta"]), rope_half_split(k, c["rope_theta"])
        group = nh // nkv
        k = k.repeat_interleave(group, dim=2)  # query head h reads kv head h // group
        v = v.repeat_interleave(group, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        s = s.masked_fill(~causal, float("-inf"))
        y = torch.softmax(s, dim=-1) @ v  # [B, H, T, D]
        return lin(pre + "o_proj", y.transpose(1, 2).reshape(b, t, nh * hd))

    def mlp(pre, x):
        if c["ffn"] == "swiglu":
            return lin(pre + "down_proj", torch.nn.functional.silu(lin(pre + "gate_proj", x)) * lin(pre + "up_proj", x))
        return lin(pre + "down_proj", gelu_tanh(lin(pre + "up_proj", x)))

    x = p["model.embed_tokens.weight"][ids]
    if c["position"] == "learned":
        x = x + p["model.embed_positions.weight"][: ids.shape[1]]
    for i in range(c["n_layers"]):
        pre = f"model.layers.{i}."
        if c["norm_position"] == "pre":
            x = x + attention(pre + "self_attn.", norm(pre + "input_layernorm", x))
            x = x + mlp(pre + "mlp.", norm(pre + "post_attention_layernorm", x))
        else:
            x = norm(pre + "input_layernorm", x + attention(pre + "self_attn.", x))
            x = norm(pre + "post_attention_layernorm", x + mlp(pre + "mlp.", x))
    if c["norm_position"] == "pre":
        x = norm("model.norm", x)
    w_out = p["model.embed_tokens.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
    return x @ w_out.t()


def loss_of(c, logits, targets):
    z = logits.reshape(-1, c["vocab_size"])
    lse = torch.logsumexp(z, dim=-1)
    ce = lse - z.gather(1, targets.reshape(-1, 1))[:, 0]
    return (ce + c["z_loss"] * lse.pow(2)).mean()


def make_fixture(name, overrides, seed):
    c = dict(BASE, **overrides)
    gen = torch.Generator().manual_seed(seed)
    w32 = initial_weights(c, gen)
    ids = torch.randint(0, c["vocab_size"], (B, T), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, c["vocab_size"], (B, T), generator=gen, dtype=torch.int64)

    p = {n: t.double().requires_grad_(True) for n, t in w32.items()}
    kinds = {n: k for n, _, k in parameter_shapes(c)}
    logits = forward_logits(c, p, ids)
    loss = loss_of(c, logits, targets)
    loss.backward()
    grads = {n: t.grad.detach().clone() for n, t in p.items()}

    # Clipping threshold: below the first step's gradient norm, so that step is clipped and (as the norm
    # falls) later ones are not.
    norm0 = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
    max_norm = float(f"{0.8 * norm0:.2g}")
    decay = [t for n, t in p.items() if kinds[n] == "matrix"]
    no_decay = [t for n, t in p.items() if kinds[n] != "matrix"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPTIM["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=OPTIM["lr"][0], betas=(OPTIM["beta1"], OPTIM["beta2"]), eps=OPTIM["eps"],
                            foreach=False)
    step_loss, step_norm = [], []
    for lr in OPTIM["lr"]:
        opt.zero_grad(set_to_none=True)
        step = loss_of(c, forward_logits(c, p, ids), targets)
        step.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(list(p.values()), max_norm))
        # lmforge clips only above max_norm; torch also scales by max_norm / (norm + 1e-6) ≈ 1 just
        # below it. A norm that close to the threshold would make the comparison fragile.
        assert abs(norm - max_norm) > 0.02 * max_norm, f"{name}: gradient norm {norm} too close to {max_norm}"
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        step_loss.append(float(step))
        step_norm.append(norm)

    out = os.path.join(ARGS.out, name)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), list(w32.items()))
    ref = [("input_ids", ids), ("targets", targets), ("logits", logits.detach()), ("loss", loss.detach()),
           ("step_loss", torch.tensor(step_loss, dtype=torch.float64)),
           ("step_grad_norm", torch.tensor(step_norm, dtype=torch.float64))]
    ref += [("grad." + n, g) for n, g in grads.items()]
    ref += [("after_steps." + n, t.detach()) for n, t in p.items()]
    write_safetensors(os.path.join(out, "reference.safetensors"), ref)
    meta = {"model": c, "batch": B, "seq_len": T, "seed": seed,
            "optim": dict(OPTIM, grad_clip=max_norm, steps=len(OPTIM["lr"]))}
    with open(os.path.join(out, "fixture.json"), "w") as fjson:
        json.dump(meta, fjson, indent=2)
        fjson.write("\n")
    print(f"{name}: loss {float(loss):.6f}, step norms {[round(x, 4) for x in step_norm]}, max_norm {max_norm}")


def write_safetensors(path, tensors):
    """The safetensors layout (8-byte header length, JSON header padded to 8, raw little-endian data)."""
    st_dtype = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": st_dtype[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                                                  "torch_reference"))
    ARGS = ap.parse_args()
    torch.set_num_threads(1)  # the same sums in the same order on every machine
    for i, (variant, changes) in enumerate(VARIANTS.items()):
        make_fixture(variant, changes, seed=1000 + i)
