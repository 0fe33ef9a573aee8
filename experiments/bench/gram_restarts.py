"""Bench family: Gram Newton–Schulz with restarts vs the direct form.

For each shape, compute dtype and step count, on a Gaussian and a
logspace(0, −3) spectrum (``core.test_matrices``), the
polar_express schedule's relative Frobenius error to the float64 SVD polar
factor in three forms: direct, Gram with the default restarts
(``gram_restart="auto"``) and Gram in one block (``gram_restart=None``); and
the FLOPs of each (``linalg.newton_schulz_flops``, checked against XLA's
``cost_analysis`` of the compiled call, which adds the elementwise work).
Errors and FLOPs are exact on any machine; no wall time is measured.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from experiments.bench import core
from spectral_jax import linalg

DTYPES = ("float32", "bfloat16")
# form name -> (gram_form, gram_restart) arguments of newton_schulz.
FORMS = {"direct": (False, "auto"), "gram_auto": (True, "auto"),
         "gram_one_block": (True, None)}


def _xla_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"])


def form_row(shape, steps: int, dtype: str, mats, refs) -> dict[str, Any]:
  """Errors (per spectrum) and FLOPs of every form in ``FORMS``."""
  row: dict[str, Any] = {
      "shape": list(shape), "steps": steps, "dtype": dtype,
      "restart_every": linalg.ns.restart_every(steps, jnp.dtype(dtype))}
  for form, (gram_form, restart) in FORMS.items():
    fn = jax.jit(lambda x, g=gram_form, r=restart: linalg.newton_schulz(
        x, steps, "polar_express", compute_dtype=dtype, gram_form=g,
        gram_restart=r)).lower(jnp.asarray(mats["gaussian"])).compile()
    row[form] = {
        "err": {k: core.rel_err(fn(jnp.asarray(v)), refs[k])
                for k, v in mats.items()},
        "flops": linalg.newton_schulz_flops(
            shape, steps, coeffs="polar_express", gram_form=gram_form,
            gram_restart=restart, dtype=jnp.dtype(dtype)),
        "xla_flops": _xla_flops(fn)}
  row["flop_ratio"] = row["gram_auto"]["flops"] / row["direct"]["flops"]
  return row


def gram_restart_rows(shapes, steps, rng, dtypes=DTYPES,
                      log=print) -> list[dict[str, Any]]:
  """One ``form_row`` per (shape, dtype, steps), fresh matrices per shape."""
  rows = []
  for shape in shapes:
    mats = core.test_matrices(shape, rng)
    refs = {k: core.ref_polar(v) for k, v in mats.items()}
    for dtype in dtypes:
      for s in steps:
        log(f"gram restarts {shape} {dtype} {s} steps ...")
        rows.append(form_row(shape, s, dtype, mats, refs))
  return rows


def render_table(rows) -> list[str]:
  """The accuracy / FLOP table (errors: Gaussian / logspace spectrum)."""
  out = ["| shape | dtype | steps | k | error direct | error Gram (auto) "
         "| error Gram (one block) | GFLOP direct → Gram | ratio |",
         "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    errs = [" / ".join(f"{r[f]['err'][k]:.2e}" for k in ("gaussian",
                                                          "logspace"))
            for f in FORMS]
    out.append(
        f"| {'×'.join(map(str, r['shape']))} | {r['dtype']} | {r['steps']} "
        f"| {r['restart_every']} | {errs[0]} | {errs[1]} | {errs[2]} "
        f"| {r['direct']['flops'] / 1e9:.2f} → "
        f"{r['gram_auto']['flops'] / 1e9:.2f} | {r['flop_ratio']:.2f} |")
  return out


def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  if not cfg.gram_shapes:
    return {}
  log("Gram restarts vs direct form ...")
  return {"gram_restarts": gram_restart_rows(
      cfg.gram_shapes, cfg.gram_steps, rng, log=lambda m: None)}


def markdown(res: dict[str, Any]) -> list[str]:
  if not res.get("gram_restarts"):
    return []
  return ["## Newton–Schulz: Gram form with restarts vs direct "
          "(polar_express schedule)", "",
          "Errors: relative Frobenius error to the float64 SVD polar factor, "
          "Gaussian / logspace(0, −3) spectrum; k: restart every k steps "
          "(`gram_restart=\"auto\"`); GFLOP: matrix products, exact.", "",
          *render_table(res["gram_restarts"]), ""]


def summary(res: dict[str, Any]) -> list[str]:
  rows = res.get("gram_restarts") or []
  return [f"Gram restarts {'×'.join(map(str, r['shape']))} {r['dtype']} "
          f"{r['steps']} steps: {r['flop_ratio']:.2f}× the direct form's "
          "FLOPs, error (logspace) "
          f"{r['gram_auto']['err']['logspace']:.1e} vs "
          f"{r['direct']['err']['logspace']:.1e}" for r in rows]
