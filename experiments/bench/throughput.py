"""Family "throughput": achieved GFLOP/s of Newton–Schulz vs plain matmul."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from experiments.bench import core
from spectral_jax import linalg


def throughput_rows(shapes, layers, steps, reps, rng) -> list[dict[str, Any]]:
  """GFLOP/s of ``newton_schulz`` (default form, 5 jordan steps, stacked
  (layers, ·, ·)) vs ``jnp.matmul`` of (layers, m, n) @ (layers, n, m),
  m ≤ n the sides (the Gram product every Newton–Schulz step starts with).

  ``ns_gflops`` counts the FLOPs actually executed; ``ns_eff_gflops`` counts
  the direct form's FLOPs (what the published algorithm costs), so it exceeds
  the matmul rate when the Gram form saves work.
  """
  rows = []
  for shape in shapes:
    m, n = min(shape), max(shape)  # NS works on the wide orientation.
    x = jnp.asarray(rng.standard_normal((layers, *shape)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((layers, m, n)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((layers, n, m)), jnp.float32)
    mm = jax.jit(jnp.matmul)
    ns = jax.jit(lambda a: linalg.newton_schulz(a, steps))
    (t_mm, t_mm_min), (t_ns, t_ns_min) = core.paired_timings_ms(
        [(mm, (a, b)), (ns, (x,))], reps=reps)
    flops_mm = 2 * layers * m * n * m
    flops_ns = int(linalg.newton_schulz_flops((layers, m, n), steps))
    flops_direct = int(linalg.newton_schulz_flops((layers, m, n), steps,
                                                  gram_form=False))
    rows.append({
        "shape": [layers, *shape], "matmul_ms": t_mm, "ns_ms": t_ns,
        "matmul_min_ms": t_mm_min, "ns_min_ms": t_ns_min,
        "min_ratio": (flops_ns / t_ns_min) / (flops_mm / t_mm_min),
        "matmul_gflops": flops_mm / t_mm / 1e6,
        "ns_gflops": flops_ns / t_ns / 1e6,
        "ns_eff_gflops": flops_direct / t_ns / 1e6})
  for r in rows:
    r["ratio"] = r["ns_gflops"] / r["matmul_gflops"]
    r["eff_ratio"] = r["ns_eff_gflops"] / r["matmul_gflops"]
  return rows


def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  log("throughput ...")
  return {"throughput": throughput_rows(cfg.shapes, cfg.layers, 5, cfg.reps,
                                        rng)}


def markdown(res: dict[str, Any]) -> list[str]:
  return ["## Orthogonalisation throughput vs plain matmul", "",
          "Median of the timed calls; `ratio (min)` uses the fastest call of "
          "each (less sensitive to other processes on a shared machine).", "",
          *core.table(
              "| shape | matmul GFLOP/s | NS GFLOP/s (executed) | ratio | "
              "ratio (min) | NS effective GFLOP/s (direct-form FLOPs) | "
              "eff. ratio |", [
                  f"| {r['shape']} | {r['matmul_gflops']:.1f} | "
                  f"{r['ns_gflops']:.1f} | {r['ratio']:.2f} | "
                  f"{r['min_ratio']:.2f} | "
                  f"{r['ns_eff_gflops']:.1f} | {r['eff_ratio']:.2f} |"
                  for r in res["throughput"]]), ""]


def summary(res: dict[str, Any]) -> list[str]:
  return [f"throughput {r['shape']}: NS {r['ns_gflops']:.0f} (eff. "
          f"{r['ns_eff_gflops']:.0f}) vs matmul "
          f"{r['matmul_gflops']:.0f} GFLOP/s -> ratio {r['ratio']:.2f}"
          f" (eff. {r['eff_ratio']:.2f})" for r in res["throughput"]]
