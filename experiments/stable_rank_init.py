"""Claims 5–10: stable rank of post-activations at Gaussian init (paper 1, §2).

* Width: ``A = σ(WX)``, ``X ~ N(0,1)`` (d₀×n), ``W ~ N(0,1/d₀)`` with m rows,
  for non-centred activations (ReLU, |t|, ReLU², GELU, SiLU, sigmoid), the
  centred tanh and SwiGLU (two independent W). Thm 2.6 / Fig. 12: st ≤ π,
  π/2, 6 … independent of width; centred and gated ones grow with width.
* Depth: a random MLP (fresh Gaussian weights per layer); st per layer.
* Token indicators (2.15), Lemma 2.9: ``st(H) = 1/p_max`` for the one-hot
  matrix and ≈ 1/p_max for Gaussian embeddings ``X = E[:, tokens]``.
* One ReLU decoder block at Assumption-A init (Prop. 2.14): the stable ranks of
  every intermediate stay O(1/p_max), ``st(B) ≤ 2π``, none grows with d.

References: Davis & Drusvyatskiy, arXiv:2512.04299, §2, Thms 2.6–2.8,
(2.15), Lemma 2.9, Prop. 2.14, Cor. 2.15.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments import report
from spectral_jax import linalg
from experiments.lib import random_features as rf
from spectral_jax.models.activations import get_activation

NAME = "stable_rank_init"
TITLE = "Claims 5–10: stable rank of post-activations at Gaussian init (§2)"

WIDTH_ACTIVATIONS = ("relu", "abs", "relu2", "gelu", "silu", "sigmoid", "tanh",
                     "swiglu")
BOUNDS = {"relu": np.pi, "abs": np.pi / 2, "relu2": 6.0}


@dataclasses.dataclass(frozen=True)
class Config:
  d0: int = 256                          # input dimension (width sweep)
  n: int = 2048                          # samples (width and depth sweeps)
  widths: tuple[int, ...] = (256, 512, 1024)
  depth_width: int = 512
  depth: int = 6
  vocab: int = 50257
  zipf_s: float = 0.86
  n_tokens: int = 4000                   # token-indicator claim
  embed_dims: tuple[int, ...] = (256, 768)
  block_dims: tuple[int, ...] = (128, 256, 512, 1024, 2048)
  saturation_from: int = 512             # C10d: saturation for d ≥ this
  block_tokens: int = 512
  block_mlp_ratio: int = 4
  seed: int = 0

  @classmethod
  def full(cls) -> "Config":
    return cls(n=4096, widths=(256, 512, 1024, 2048, 4096), depth_width=1024,
               n_tokens=10000)


def _st(a: jax.Array) -> float:
  """st(A) through the Gram matrix of A's smaller side (fp64 accumulation)."""
  g = linalg.gram(a if a.shape[0] <= a.shape[1] else a.T, chunk_size=4096)
  return float(linalg.stable_rank_from_gram(g))


def width_sweep(config: Config, key) -> dict:
  kx, kw = jax.random.split(key)
  x = jax.random.normal(kx, (config.d0, config.n), jnp.float64)
  out = {}
  for act in WIDTH_ACTIVATIONS:
    vals = []
    for m in config.widths:
      shape = (2, m, config.d0) if act == "swiglu" else (m, config.d0)
      v = jax.random.normal(jax.random.fold_in(kw, m), shape,
                            jnp.float64) / np.sqrt(config.d0)
      vals.append(_st(rf.features(v, x, act)))
    out[act] = vals
  return out


def depth_sweep(config: Config, key) -> dict:
  w = config.depth_width
  inits = {"relu": 2.0, "abs": 1.0, "relu2": 1.0}  # variance × 1/fan_in
  out = {}
  for act, gain in inits.items():
    k = jax.random.fold_in(key, hash(act) % 1000)
    a = jax.random.normal(k, (w, config.n), jnp.float64)
    vals = []
    for layer in range(config.depth):
      wl = jax.random.normal(jax.random.fold_in(k, layer + 1), (w, w),
                             jnp.float64) * np.sqrt(gain / w)
      a = get_activation(act)(wl @ a)
      # ReLU² is homogeneous, so rescaling changes no stable rank; it only
      # keeps 6 layers of squaring inside float range.
      a = a / jnp.sqrt(jnp.mean(a * a))
      vals.append(_st(a))
    out[act] = vals
  return out


def zipf_tokens(rng: np.random.Generator, vocab: int, s: float, n: int):
  p = np.arange(1, vocab + 1, dtype=np.float64) ** (-s)
  return rng.choice(vocab, size=n, p=p / p.sum())


def token_indicators(config: Config, rng: np.random.Generator, key) -> dict:
  tokens = zipf_tokens(rng, config.vocab, config.zipf_s, config.n_tokens)
  # Rows of H for tokens that never occur are zero and change no norm.
  uniq, idx = np.unique(tokens, return_inverse=True)
  h = jnp.zeros((len(uniq), len(tokens)), jnp.float64).at[
      idx, np.arange(len(tokens))].set(1.0)
  p_max = np.bincount(idx).max() / len(tokens)
  out = {"inv_pmax": 1.0 / p_max, "st_onehot": _st(h), "st_embed": {}}
  for d in config.embed_dims:
    e = jax.random.normal(jax.random.fold_in(key, d), (d, len(uniq)),
                          jnp.float64)
    out["st_embed"][d] = _st(e[:, idx])
  return out


def _rms_norm(x):
  """Column-wise RMSNorm without gain: x / sqrt(mean(x²)) (features × tokens)."""
  return x / jnp.sqrt(jnp.mean(x * x, axis=0, keepdims=True))


def relu_block(key, x, mlp_ratio: int = 4) -> dict:
  """One single-head ReLU decoder block at Assumption-A init, no mask.

  ``W_Q, W_K, W_V, W_O ~ N(0,1/d)``, ``W_1 ∈ R^{k×d} ~ N(0,1/d)``,
  ``W_2 ∈ R^{d×k} ~ N(0,1/k)`` with ``k = mlp_ratio·d``; features × tokens.
  Returns every intermediate of Prop. 2.14.
  """
  d = x.shape[0]
  k = mlp_ratio * d
  ks = jax.random.split(key, 6)
  wq, wk, wv, wo = (jax.random.normal(kk, (d, d), x.dtype) / np.sqrt(d)
                    for kk in ks[:4])
  w1 = jax.random.normal(ks[4], (k, d), x.dtype) / np.sqrt(d)
  w2 = jax.random.normal(ks[5], (d, k), x.dtype) / np.sqrt(k)
  a_rms = _rms_norm(x)
  q, kk, v = wq @ a_rms, wk @ a_rms, wv @ a_rms
  attn = jax.nn.softmax((kk.T @ q) / np.sqrt(d), axis=0)  # keys × queries
  h = wo @ (v @ attn)
  x_att = x + h
  a_rms_mlp = _rms_norm(x_att)
  b = jax.nn.relu(w1 @ a_rms_mlp)
  x_plus = x_att + w2 @ b
  return {"X": x, "A_rms": a_rms, "H": h, "X_att": x_att,
          "A_rms_mlp": a_rms_mlp, "B": b, "X+": x_plus}


def transformer_block(config: Config, rng: np.random.Generator, key) -> dict:
  out = {}
  tokens = zipf_tokens(rng, config.vocab, config.zipf_s, config.block_tokens)
  uniq, idx = np.unique(tokens, return_inverse=True)
  out["inv_pmax"] = len(tokens) / np.bincount(idx).max()
  for d in config.block_dims:
    kd = jax.random.fold_in(key, d)
    e = jax.random.normal(kd, (d, len(uniq)), jnp.float64)
    acts = relu_block(jax.random.fold_in(kd, 1), e[:, idx],
                      config.block_mlp_ratio)
    out[d] = {name: _st(a) for name, a in acts.items()}
  return out


def gpt_block(config: Config, rng: np.random.Generator, key) -> dict:
  """The package's GPT (one layer, one head: ReLU², causal mask, RoPE) at init.

  Stable ranks of the activations it sows (Table 1 pairing), tokens × features.
  Token ids are re-indexed onto the tokens that occur: the embedding rows are
  iid N(0, I), so this changes no distribution and keeps the table small.
  """
  from flax import nnx
  from spectral_jax.models.gpt import GPT, GPTConfig
  tokens = zipf_tokens(rng, config.vocab, config.zipf_s, config.block_tokens)
  uniq, idx = np.unique(tokens, return_inverse=True)
  out = {"inv_pmax": len(tokens) / np.bincount(idx).max()}
  for d in config.block_dims:
    cfg = GPTConfig(vocab_size=len(uniq), context=len(tokens), n_layer=1,
                    n_head=1, d_model=d, mlp_ratio=config.block_mlp_ratio,
                    param_dtype=jnp.float64)
    model = GPT(cfg, rngs=nnx.Rngs(params=jax.random.fold_in(key, d)))
    _, inter = nnx.capture(model, nnx.Intermediate)(jnp.asarray(idx)[None])
    blk = inter["blocks"]

    def mat(node, width):
      return jax.tree.leaves(node)[0].reshape(-1, width)

    acts = {"X": model.wte.embedding[...][idx],
            "A_rms": mat(blk["attn"]["q"]["inputs"], d),
            "H": mat(blk["attn"]["o"]["heads"], d),
            "A_rms_mlp": mat(blk["mlp"]["fc"]["inputs"], d),
            "B": mat(blk["mlp"]["proj"]["inputs"], cfg.mlp_ratio * d)}
    out[d] = {name: _st(a) for name, a in acts.items()}
  return out


def run(config: Config, out_dir: str) -> dict:
  report.enable_x64()
  os.makedirs(out_dir, exist_ok=True)
  key = jax.random.key(config.seed)
  rng = np.random.default_rng(config.seed)
  from tqdm.auto import tqdm
  parts = {}
  for name, fn, args in tqdm([
      ("width", width_sweep, (config, jax.random.fold_in(key, 1))),
      ("depth", depth_sweep, (config, jax.random.fold_in(key, 2))),
      ("tokens", token_indicators, (config, rng, jax.random.fold_in(key, 3))),
      ("block", transformer_block, (config, rng, jax.random.fold_in(key, 4))),
      ("gpt", gpt_block, (config, rng, jax.random.fold_in(key, 5))),
  ], desc="stable-rank sweeps", leave=False):
    parts[name] = fn(*args)
  width, depth, tok, block, gpt = (parts[k] for k in (
      "width", "depth", "tokens", "block", "gpt"))
  rows = ([{"sweep": "width", "activation": a, "m": m, "st": v}
           for a, vals in width.items() for m, v in zip(config.widths, vals)]
          + [{"sweep": "depth", "activation": a, "layer": i + 1, "st": v}
             for a, vals in depth.items() for i, v in enumerate(vals)]
          + [{"sweep": "tokens", **{k: v for k, v in tok.items()
                                    if k != "st_embed"},
              **{f"st_embed_d{d}": v for d, v in tok["st_embed"].items()}}]
          + [{"sweep": "block", "d": d, **{f"st_{k}": v for k, v in vals.items()}}
             for d, vals in block.items() if d != "inv_pmax"]
          + [{"sweep": "gpt_block", "d": d,
              **{f"st_{k}": v for k, v in vals.items()}}
             for d, vals in gpt.items() if d != "inv_pmax"])
  report.write_jsonl(os.path.join(out_dir, "metrics.jsonl"), rows)
  figures = [_figure(config, width, depth, block, out_dir)]
  claims = _claims(config, width, depth, tok, block, gpt)
  summary = (
      f"Width sweep: X ~ N(0,1) of shape {config.d0}×{config.n}, W ~ "
      f"N(0,1/{config.d0}) with m ∈ {list(config.widths)} rows. Depth: width "
      f"{config.depth_width}, n = {config.n}, {config.depth} layers of fresh "
      "Gaussian weights (He init for ReLU, N(0,1/fan_in) for |t| and ReLU², "
      "ReLU² rescaled per layer). Tokens: "
      f"{config.n_tokens} Zipf({config.zipf_s}) tokens over V = {config.vocab}"
      f", Gaussian embeddings with d ∈ {list(config.embed_dims)}. Block: "
      "one single-head ReLU decoder block at Assumption-A init, no mask, built "
      "in this experiment from jax primitives (not the package's GPT model), "
      f"input = Gaussian embeddings of {config.block_tokens} Zipf tokens, "
      f"d ∈ {list(config.block_dims)}, MLP width {config.block_mlp_ratio}d; H "
      "is the attention output W_O V·softmax, B = ReLU(W₁ A_rms_mlp). "
      "All stable ranks in float64 through the Gram matrix.\n\n"
      "Single ReLU block (this experiment's construction):\n\n"
      + _block_table(block)
      + "\n\nThe package's GPT (`spectral_jax.models.GPT`, one layer, one "
      "head, ReLU² MLP, causal mask, RoPE, Assumption-A init) on the same kind "
      "of input; H is the attention output before W_O, B = relu²(W₁ A_rms_mlp):"
      "\n\n" + _block_table(gpt))
  return {"claims": claims, "figures": figures, "summary": summary,
          "metrics": {"width": width, "depth": depth, "tokens": tok,
                      "block": {str(k): v for k, v in block.items()},
                      "gpt_block": {str(k): v for k, v in gpt.items()}}}


def _block_table(block) -> str:
  dims = [d for d in block if d != "inv_pmax"]
  names = list(block[dims[0]])
  lines = ["| d | " + " | ".join(f"st({n})" for n in names) + " |",
           "|---" * (len(names) + 1) + "|"]
  for d in dims:
    lines.append(f"| {d} | " + " | ".join(f"{block[d][n]:.2f}" for n in names)
                 + " |")
  lines.append(f"\n1/p_max of the block's tokens: {block['inv_pmax']:.1f}.")
  return "\n".join(lines)


def _figure(config, width, depth, block, out_dir):
  fig, axes = report.subplots(3)
  report.plot_curves(axes[0], width, x=list(config.widths),
                     xlabel="width m (rows of W)", ylabel="st(σ(WX))",
                     title="stable rank vs width at init")
  axes[0].set_xscale("log", base=2)
  for a, b in BOUNDS.items():
    axes[0].axhline(b, ls="--", lw=1, color="gray")
  axes[0].text(config.widths[0], np.pi * 1.1, "dashed: π/2, π, 6 bounds",
               fontsize=7, color="gray")
  for line in axes[0].get_lines():
    if line.get_linestyle() == "-":
      line.set_marker("o")
  report.plot_curves(axes[1], depth, x=np.arange(1, config.depth + 1),
                     xlabel="layer", ylabel="st(A_ℓ)", logy=False,
                     title=f"stable rank vs depth (width {config.depth_width})")
  dims = [d for d in block if d != "inv_pmax"]
  names = list(block[dims[0]])
  report.plot_curves(axes[2], {n: [block[d][n] for d in dims] for n in names},
                     x=dims, xlabel="model width d", ylabel="stable rank",
                     title="ReLU decoder block at init")
  axes[2].axhline(2 * np.pi, ls="--", color="k", lw=1.2, label="2π bound on st(B)")
  axes[2].axhline(block["inv_pmax"], ls=":", color="gray", lw=1.2,
                  label="1/p_max")
  axes[2].legend(fontsize=7)
  return report.save_figure(fig, os.path.join(out_dir, "st_init.png"))


def _width_depth_claims(config, width, depth) -> list[dict]:
  """C5–C8: one layer across widths and activations, and depth."""
  E = NAME
  ws = list(config.widths)

  def flat(v, lo, hi):
    return all(lo <= x <= hi for x in v) and max(v) / min(v) <= 1.05

  def grows(v):
    return all(b > a for a, b in zip(v, v[1:]))

  return [
      report.claim("C5", E, "st(ReLU(WX)) stays below π and flat in width",
                   "∈ [3.10, 3.14] [M]; ≤ π (Thm 2.6)",
                   f"{report.fmt(width['relu'])} for m = {ws}",
                   flat(width["relu"], 2.9, np.pi),
                   "2.9 ≤ st ≤ π and max/min ≤ 1.05"),
      report.claim("C6a", E, "st(|WX|) ≤ π/2, flat in width",
                   "∈ [1.56, 1.571] [M]; bound π/2",
                   report.fmt(width["abs"]), flat(width["abs"], 1.45, np.pi / 2),
                   "1.45 ≤ st ≤ π/2 and max/min ≤ 1.05"),
      report.claim("C6b", E, "st(ReLU(WX)²) ≤ 6, flat in width",
                   "∈ [5.8, 6.0] [M]; bound 6", report.fmt(width["relu2"]),
                   flat(width["relu2"], 5.0, 6.0),
                   "5 ≤ st ≤ 6 and max/min ≤ 1.05"),
      report.claim("C7a", E, "st(SwiGLU) grows with width and is ≫ 6",
                   "~121 → ~310 for m = 256 → 4096 [M]",
                   report.fmt(width["swiglu"]),
                   grows(width["swiglu"]) and min(width["swiglu"]) > 30,
                   "strictly increasing and all > 30"),
      report.claim("C7b", E, "st(tanh(WX)) grows with width (centred)",
                   "66 → 147 for m = 256 → 4096 [M]", report.fmt(width["tanh"]),
                   grows(width["tanh"]) and min(width["tanh"]) > 20,
                   "strictly increasing and all > 20"),
      report.claim("C7c", E, "Non-centred activations (GELU, SiLU, sigmoid) "
                   "stay flat in width", "GELU ≈ 5.2–5.3, SiLU ≈ 8.1–8.2, "
                   "sigmoid 1.17 [M]",
                   "; ".join(f"{a} {report.fmt(width[a])}"
                             for a in ("gelu", "silu", "sigmoid")),
                   all(max(width[a]) / min(width[a]) <= 1.05
                       for a in ("gelu", "silu", "sigmoid")),
                   "max/min ≤ 1.05 for each"),
      report.claim("C8", E, "st of ReLU features does not increase with depth "
                   "(He init)", "≈ 3.1, 2.0, 1.65, 1.47, 1.40, 1.31 [M]; "
                   "depth blow-up 'never observed' (paper)",
                   f"ReLU {report.fmt(depth['relu'])}; |t| "
                   f"{report.fmt(depth['abs'])}; ReLU² {report.fmt(depth['relu2'])}",
                   all(b <= a * 1.02 for a, b in zip(depth["relu"],
                                                     depth["relu"][1:])),
                   "each layer ≤ 1.02 × the previous (ReLU)"),
  ]


def _token_claims(tok) -> list[dict]:
  """C9a–b: token matrices and their embeddings."""
  E = NAME
  inv = tok["inv_pmax"]
  emb = tok["st_embed"]
  return [
      report.claim("C9a", E, "st(one-hot token matrix) = 1/p_max exactly",
                   "identity (2.15); 1/p_max = 26.6 at n = 20000 [M]",
                   f"st {tok['st_onehot']:.6g} vs 1/p_max {inv:.6g}",
                   abs(tok["st_onehot"] - inv) <= 1e-9 * inv,
                   "relative error ≤ 1e-9"),
      report.claim("C9b", E, "st(Gaussian embeddings of the tokens) ≈ 1/p_max",
                   "≤ (1+ε)/(1−ε)/p_max (Lemma 2.9); 26.6 (d=256), 25.0 "
                   "(d=768) [M]",
                   "; ".join(f"d={d}: {v:.3g}" for d, v in emb.items())
                   + f" (1/p_max {inv:.3g})",
                   all(0.7 * inv <= v <= 1.3 * inv for v in emb.values()),
                   "within ±30% of 1/p_max"),
  ]


def _block_stats(config, block) -> dict:
  """The ReLU decoder block's numbers behind C10a–e."""
  dims = [d for d in block if d != "inv_pmax"]
  stb = [block[d]["B"] for d in dims]
  names = ("A_rms", "X_att", "A_rms_mlp")
  ratio = [block[d][n] / block[d]["X"] for d in dims for n in names]
  inv_b = block["inv_pmax"]
  # "Grows with d": st(X) rises toward its d-free ceiling 1/p_max and
  # saturates (Lemma 2.9 needs d ≳ log n/ε²), so growth is judged past the
  # saturation width, and the value against the bound at every d.
  sat = [d for d in dims if d >= config.saturation_from] or dims
  growth = {n: block[sat[-1]][n] / block[sat[0]][n] for n in block[sat[0]]}
  x_like = ("X", "A_rms", "X_att", "A_rms_mlp")
  bound_ratio = max(block[d][n] / block["inv_pmax"] for d in dims
                    for n in x_like)
  # st(X) of Gaussian embeddings itself rises towards 1/p_max as d grows
  # (Lemma 2.9 needs d ≳ log n/ε²); normalising by it isolates the block.
  rel = {f"{n}/X": [block[d][n] / block[d]["X"] for d in dims]
         for n in ("A_rms", "X_att", "A_rms_mlp")}
  rel.update({n: [block[d][n] for d in dims] for n in ("H", "B", "X+")})
  rel_growth = {n: v[-1] / v[0] for n, v in rel.items()}
  return dict(dims=dims, stb=stb, ratio=ratio, inv_b=inv_b, sat=sat,
              growth=growth, bound_ratio=bound_ratio, rel_growth=rel_growth)


def _block_claims(config, block) -> list[dict]:
  """C10a–e: the ReLU decoder block at init."""
  E = NAME
  b = _block_stats(config, block)
  dims = b["dims"]
  stb = b["stb"]
  ratio = b["ratio"]
  inv_b = b["inv_b"]
  sat = b["sat"]
  growth = b["growth"]
  bound_ratio = b["bound_ratio"]
  rel_growth = b["rel_growth"]
  return [
      report.claim("C10a", E, "ReLU block at init: st(B) ≤ 2π for every d",
                   "≤ 2π (Prop. 2.14); ≈ 3.08–3.09 [M]",
                   f"{report.fmt(stb)} for d = {dims}",
                   all(s <= 2 * np.pi for s in stb), "st(B) ≤ 2π"),
      report.claim("C10b", E, "st(A_rms), st(X_att), st(A_rms_mlp) ≈ st(X) "
                   "≲ C/p_max", f"20–25 with 1/p_max ≈ 20–26 [M]",
                   f"ratios to st(X) {report.fmt(min(ratio))}–"
                   f"{report.fmt(max(ratio))}; st(X) "
                   f"{report.fmt([block[d]['X'] for d in dims])}, "
                   f"1/p_max {inv_b:.3g}",
                   all(0.67 <= r <= 1.5 for r in ratio)
                   and all(block[d]["X"] <= 2 * inv_b for d in dims),
                   "each ratio in [0.67, 1.5] and st(X) ≤ 2/p_max"),
      report.claim("C10c", E, "st(H) and st(X⁺) are O(1)",
                   "st(H) ≈ 2.5–3.5, st(X⁺) ≈ 7.3–8.4 [M]",
                   f"st(H) {report.fmt([block[d]['H'] for d in dims])}, "
                   f"st(X⁺) {report.fmt([block[d]['X+'] for d in dims])}",
                   all(block[d]["H"] <= 6 and block[d]["X+"] <= 2 * inv_b
                       for d in dims),
                   "st(H) ≤ 6 and st(X⁺) ≤ 2/p_max"),
      report.claim("C10d", E, "None of the block's stable ranks grows with d: "
                   "each stays under its d-free bound and saturates",
                   "independent of width (Cor. 2.15: st ≤ C_in/p_max; Lemma "
                   "2.9: st(X) ≤ (1+ε)/(1−ε)/p_max; [M] 'none grows with d')",
                   f"max st·p_max over X, A_rms, X_att, A_rms_mlp and d = "
                   f"{dims}: {bound_ratio:.2f}; st(B) ≤ {max(stb):.3g}; st at "
                   f"d={sat[-1]} / st at d={sat[0]}: " + ", ".join(
                       f"{n} {g:.2f}" for n, g in growth.items()),
                   bound_ratio <= 2 and all(s <= 2 * np.pi for s in stb)
                   and all(g <= 1.3 for g in growth.values()),
                   "at every d: st ≤ 2/p_max for X, A_rms, X_att, A_rms_mlp "
                   "(Lemma 2.9's (1+ε)/(1−ε) at ε = 1/3; the paper leaves C "
                   "free) and st(B) ≤ 2π; saturation: st at the largest d / "
                   f"st at d = {sat[0]} ≤ 1.3 for every quantity (raw)"),
      report.claim("C10e", E, "The block adds no d-dependence of its own: "
                   "st(A_rms), st(X_att), st(A_rms_mlp) relative to st(X), and "
                   "st(H), st(B), st(X⁺) raw, do not grow with d",
                   "bounds ∝ st(X) with d-free constants (Prop. 2.14)",
                   f"d={dims[-1]} / d={dims[0]}: " + ", ".join(
                       f"{n} {g:.2f}" for n, g in rel_growth.items()),
                   all(g <= 1.3 for g in rel_growth.values()),
                   "largest-d / smallest-d ratio ≤ 1.3 for each"),
  ]


def _gpt_claim(gpt) -> dict:
  """C10f: the package's GPT block at init."""
  E = NAME
  gd = [d for d in gpt if d != "inv_pmax"]
  g_b = [gpt[d]["B"] for d in gd]
  g_ratio = [gpt[d][n] / gpt[d]["X"] for d in gd for n in ("A_rms", "A_rms_mlp")]
  return report.claim(
      "C10f", E, "The package's GPT block at init (ReLU², causal, RoPE): "
      "st(B) is O(1) and does not grow with d; st(A_rms), st(A_rms_mlp) track st(X)",
      "width-independent O(1) bounds (Cor. 2.15, stated for ReLU; ReLU²'s "
      "one-layer NSR bound is 6)",
      f"st(B) {report.fmt(g_b)} for d = {gd}; st(A_rms)/st(X), "
      f"st(A_rms_mlp)/st(X) {report.fmt(min(g_ratio))}–{report.fmt(max(g_ratio))}",
      max(g_b) <= 12 and g_b[-1] / g_b[0] <= 1.3
      and all(0.5 <= r <= 2 for r in g_ratio),
      "st(B) ≤ 12 (2×6), largest-d / smallest-d ≤ 1.3, ratios in [0.5, 2]")


def _claims(config, width, depth, tok, block, gpt):
  return (_width_depth_claims(config, width, depth) + _token_claims(tok)
          + _block_claims(config, block) + [_gpt_claim(gpt)])
