"""Family "muon": ``spectral_jax.muon`` vs ``optax.contrib.muon``.

Identical settings on a 6-layer width-256 transformer tree (per layer
256×768, 256×256, 256×1024, 1024×256), with one leaf per layer and with the
layers stacked as (6,·,·), and (``cfg.gpt2``, the full run) on a
GPT-2-small-shaped tree (12 layers, width 768): median ms of the jitted
``update`` (timed interleaved) and the largest relative difference of the
updates.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench import core
from spectral_jax import linalg


def transformer_tree(shapes, layers: int, stacked: bool, rng,
                     dtype=jnp.float32) -> dict[str, Any]:
  """Params of ``layers`` blocks with matrices of ``shapes`` (fan_in,
  fan_out) and a 1-D norm gain per block (Adam branch): one leaf per layer
  (``stacked=False``) or each matrix stacked as (layers, ·, ·)."""
  names = ("attn_qkv", "attn_proj", "mlp_fc", "mlp_proj")[:len(shapes)]

  def block():
    p = {n: rng.standard_normal(s) / np.sqrt(s[0])
         for n, s in zip(names, shapes)}
    p["norm"] = np.ones(shapes[0][0])
    return p

  blocks = [block() for _ in range(layers)]
  if stacked:
    tree = {k: np.stack([b[k] for b in blocks]) for k in blocks[0]}
  else:
    tree = {f"layer{i}": b for i, b in enumerate(blocks)}
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def muon_tree_flops(shapes, layers, steps=5) -> int:
  """FLOPs of optax's Newton–Schulz (direct form) on the tree."""
  return int(layers * sum(linalg.newton_schulz_flops(s, steps,
                                                     gram_form=False)
                          for s in shapes))


def muon_rows(shapes, layers, reps, rng, lr=0.02, tree_name="small",
              **muon_kwargs) -> list[dict[str, Any]]:
  """ours vs optax.contrib.muon (identical settings), per-layer and stacked
  leaves: median ms of the jitted ``update`` (the two timed interleaved) and
  the max relative difference of their updates (they should agree to
  float32 rounding)."""
  import optax  # pylint: disable=g-import-not-at-top
  import spectral_jax  # pylint: disable=g-import-not-at-top

  rows = []
  for stacked in (False, True):
    params = transformer_tree(shapes, layers, stacked, rng)
    grads = jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
    dims = (spectral_jax.stacked_dimension_numbers(params) if stacked
            else None)
    result = {"tree": tree_name, "layout": "stacked" if stacked else
              "per_layer", "layers": layers, "shapes": [list(s) for s in
                                                       shapes]}
    updates, calls = {}, []
    names = ("optax", "ours")
    for name, make in zip(names, (optax.contrib.muon, spectral_jax.muon)):
      opt = make(lr, muon_weight_dimension_numbers=dims, **muon_kwargs)
      state = opt.init(params)
      upd = jax.jit(opt.update)
      calls.append((upd, (grads, state, params)))
      updates[name] = upd(grads, state, params)[0]
    for name, (med, low) in zip(names, core.paired_timings_ms(calls, reps=reps)):
      result[f"{name}_ms"], result[f"{name}_min_ms"] = med, low
    diffs = jax.tree.map(
        lambda a, b: float(jnp.linalg.norm(a - b) /
                           jnp.maximum(jnp.linalg.norm(b), 1e-30)),
        updates["ours"], updates["optax"])
    result["max_rel_diff"] = max(jax.tree.leaves(diffs))
    result["ratio"] = result["ours_ms"] / result["optax_ms"]
    result["min_ratio"] = result["ours_min_ms"] / result["optax_min_ms"]
    rows.append(result)
  return rows



def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  log("muon vs optax ...")
  rows = muon_rows(cfg.shapes, cfg.layers, cfg.reps, rng,
                   lr=cfg.learning_rate)
  gflop = muon_tree_flops(cfg.shapes, cfg.layers) / 1e9
  if cfg.gpt2:
    log("muon vs optax, GPT-2 small tree ...")
    rows += muon_rows(core.GPT2_SMALL_SHAPES, 12, cfg.gpt2_reps, rng,
                      lr=cfg.learning_rate, tree_name="gpt2_small")
  return {"muon": rows, "muon_tree_gflop": gflop}


def markdown(res: dict[str, Any]) -> list[str]:
  return ["## Muon update: spectral_jax.muon vs optax.contrib.muon", "",
          f"Newton–Schulz work of the small tree (optax's direct form): "
          f"{res['muon_tree_gflop']:.1f} GFLOP.", "",
          *core.table(
              "| tree | layout | optax ms | ours ms | ours/optax | "
              "ours/optax (min) | max rel. diff |", [
                  f"| {r['tree']} | {r['layout']} | {r['optax_ms']:.1f} | "
                  f"{r['ours_ms']:.1f} | {r['ratio']:.2f} | "
                  f"{r['min_ratio']:.2f} | {r['max_rel_diff']:.1e} |"
                  for r in res["muon"]]), ""]


def summary(res: dict[str, Any]) -> list[str]:
  return [f"muon {r['tree']}/{r['layout']}: ours {r['ours_ms']:.1f} ms "
          f"vs optax {r['optax_ms']:.1f} ms -> ratio {r['ratio']:.2f}"
          f" (min-based {r['min_ratio']:.2f})" for r in res["muon"]]
