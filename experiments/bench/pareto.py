"""Family "pareto": every polar method per matrix shape, error vs time.

Exact ``svd`` / ``eigh`` / ``qdwh`` / ``auto`` and the Newton–Schulz presets at
3–8 steps → relative Frobenius error to the exact polar factor (NumPy float64
SVD) on a Gaussian and a decaying spectrum vs median ms of the jitted call,
with the non-dominated rows starred.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from experiments.bench import core
from spectral_jax import linalg


def pareto_rows(shape, cfg: core.BenchConfig, rng) -> list[dict[str, Any]]:
  """One row per (method, schedule, steps, norm, form): error per test
  spectrum and median ms, for float32 matrices of ``shape``."""
  mats = core.test_matrices(shape, rng)
  refs = {k: core.ref_polar(v) for k, v in mats.items()}
  rows = []

  def measure_one(label, fn, **info):
    f = jax.jit(fn)
    errs = {k: core.rel_err(f(jnp.asarray(v)), refs[k])
            for k, v in mats.items()}
    ms = core.median_ms(f, jnp.asarray(mats["gaussian"]), reps=cfg.reps)
    rows.append({"shape": list(shape), "method": label, "ms": ms,
                 "err": errs, **info})

  for method in cfg.exact:
    measure_one(method, lambda x, m=method: linalg.polar(x, m), steps=None)
  for preset, norm in cfg.presets:
    for form in cfg.forms:
      for steps in cfg.steps:
        fn = lambda x, p=preset, s=steps, nm=norm, fm=form: (
            linalg.newton_schulz(x, s, p, norm=nm,
                                 gram_form=core.form_arg(fm)))
        label = f"ns:{preset}" + ("" if norm == "frobenius" else f"+{norm}")
        measure_one(label, fn, steps=steps, norm=norm, form=form,
                    flops=int(linalg.newton_schulz_flops(
                        shape, steps, coeffs=preset, norm=norm,
                        gram_form=core.form_arg(form))))
  return rows


def pareto_front(rows, spectrum="gaussian") -> list[dict[str, Any]]:
  """Rows not beaten on both error and time by another row."""
  front = []
  for r in rows:
    dominated = any(
        o["err"][spectrum] <= r["err"][spectrum] and o["ms"] <= r["ms"]
        and (o["err"][spectrum] < r["err"][spectrum] or o["ms"] < r["ms"])
        for o in rows)
    if not dominated:
      front.append(r)
  return sorted(front, key=lambda r: r["ms"])


def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  out = {}
  for shape in cfg.shapes:
    key = "x".join(map(str, shape))
    log(f"pareto {key} ...")
    out[key] = pareto_rows(shape, cfg, rng)
  return {"pareto": out}


def markdown(res: dict[str, Any]) -> list[str]:
  out = ["## Pareto: error to exact polar (gaussian / logspace) vs median ms",
         ""]
  for key, rows in res["pareto"].items():
    front = {id(r) for r in pareto_front(rows)}
    out += [f"### {key} (float32)", ""]
    out += core.table("| method | steps | form | ms | rel. error | Pareto |", [
        f"| {r['method']} | {r.get('steps') or ''} | {r.get('form', '')} | "
        f"{r['ms']:.2f} | {core.fmt_err(r['err'])} "
        f"| {'*' if id(r) in front else ''} |"
        for r in sorted(rows, key=lambda r: r["ms"])])
    out.append("")
  return out


def summary(res: dict[str, Any]) -> list[str]:
  del res
  return []
