"""Family "forms": direct vs Gram-form Newton–Schulz, timed interleaved.

For each shape (stacked over ``cfg.layers``), ``jordan`` and
``polar_express`` at 5 steps: median ms, executed FLOPs and the error to the
exact polar factor (Gaussian input).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench import core
from spectral_jax import linalg


def form_rows(shapes, steps, reps, rng, batch=()) -> list[dict[str, Any]]:
  """Direct vs Gram-form Newton–Schulz (polar_express and jordan), timed
  interleaved: ms, executed FLOPs, error to exact polar (Gaussian input)."""
  rows = []
  forms = ("direct", "gram")
  for shape in shapes:
    g = rng.standard_normal((*batch, *shape)).astype(np.float32)
    ref = core.ref_polar(g)
    for preset in ("jordan", "polar_express"):
      fns = [jax.jit(lambda x, p=preset, fm=form: linalg.newton_schulz(
          x, steps, p, gram_form=core.form_arg(fm))) for form in forms]
      times = core.paired_timings_ms([(f, (jnp.asarray(g),)) for f in fns],
                                     reps=reps)
      for form, f, (med, _) in zip(forms, fns, times):
        rows.append({
            "shape": [*batch, *shape], "preset": preset, "form": form,
            "steps": steps, "ms": med,
            "flops": int(linalg.newton_schulz_flops(
                (*batch, *shape), steps, coeffs=preset,
                gram_form=core.form_arg(form))),
            "err": core.rel_err(f(jnp.asarray(g)), ref)})
  return rows


def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  log("direct vs gram form ...")
  return {"forms": form_rows(cfg.shapes, 5, cfg.reps, rng,
                             batch=(cfg.layers,))}


def markdown(res: dict[str, Any]) -> list[str]:
  if not res.get("forms"):
    return []
  return ["## Newton–Schulz: direct vs Gram form (5 steps)", "",
          *core.table("| shape | preset | form | ms | GFLOP | rel. error |", [
              f"| {r['shape']} | {r['preset']} | {r['form']} | "
              f"{r['ms']:.2f} | {r['flops'] / 1e9:.3f} | {r['err']:.3e} |"
              for r in res["forms"]]), ""]


def summary(res: dict[str, Any]) -> list[str]:
  del res
  return []
