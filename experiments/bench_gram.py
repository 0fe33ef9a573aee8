"""``spectral-jax bench-gram``: Gram Newton–Schulz with restarts vs the
direct form (GitHub issue 17, item 3).

For each shape, compute dtype and step count, on a Gaussian and a
logspace(0, −3) spectrum (``experiments.bench.test_matrices``), the
polar_express schedule's relative Frobenius error to the float64 SVD polar
factor in three forms: direct, Gram with the default restarts
(``gram_restart="auto"``) and Gram in one block (``gram_restart=None``); and
the FLOPs of each (``linalg.newton_schulz_flops``, checked against XLA's
``cost_analysis`` of the compiled call, which adds the elementwise work).
Errors and FLOPs are exact on any machine; no wall time is measured.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench import machine_info
from experiments.bench import test_matrices
from spectral_jax import files
from spectral_jax import linalg

SHAPES = ((256, 1024), (768, 3072))
STEPS = (5, 8, 12, 20)
DTYPES = ("float32", "bfloat16")
# form name -> (gram_form, gram_restart) arguments of newton_schulz.
FORMS = {"direct": (False, "auto"), "gram_auto": (True, "auto"),
         "gram_one_block": (True, None)}


def _ref_polar(g: np.ndarray) -> np.ndarray:
  u, _, vh = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vh


def _rel_err(a, ref) -> float:
  a = np.asarray(a, np.float64)
  return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


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
        "err": {k: _rel_err(fn(jnp.asarray(v)), refs[k])
                for k, v in mats.items()},
        "flops": linalg.newton_schulz_flops(
            shape, steps, coeffs="polar_express", gram_form=gram_form,
            gram_restart=restart, dtype=jnp.dtype(dtype)),
        "xla_flops": _xla_flops(fn)}
  row["flop_ratio"] = row["gram_auto"]["flops"] / row["direct"]["flops"]
  return row


def gram_restart_rows(shapes=SHAPES, steps=STEPS, dtypes=DTYPES, seed=0,
                      log=print) -> list[dict[str, Any]]:
  """One ``form_row`` per (shape, dtype, steps), fresh matrices per shape."""
  rng = np.random.default_rng(seed)
  rows = []
  for shape in shapes:
    mats = test_matrices(shape, rng)
    refs = {k: _ref_polar(v) for k, v in mats.items()}
    for dtype in dtypes:
      for s in steps:
        log(f"gram restarts {shape} {dtype} {s} steps ...")
        rows.append(form_row(shape, s, dtype, mats, refs))
  return rows


def render_markdown(rows) -> str:
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
  return "\n".join(out)


# --------------------------------------------------------------------- CLI ---
def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--quick", action="store_true",
                      help="256×1024 only, 5 and 20 steps")
  parser.add_argument("--out", default=None, metavar="DIR",
                      help="also write bench_gram.json and bench_gram.md")
  parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
  out = None
  if args.out is not None:
    from experiments.outdir import prepare_out_dir  # pylint: disable=g-import-not-at-top
    out = prepare_out_dir(args.out)  # Before any work: a bad --out is cheap.
  shapes, steps = (SHAPES[:1], (5, 20)) if args.quick else (SHAPES, STEPS)
  rows = gram_restart_rows(shapes, steps, DTYPES, seed=args.seed)
  table = render_markdown(rows)
  print(table)
  if out is not None:
    res = {"machine": machine_info(), "rows": rows}
    files.atomic_write_text(os.path.join(out, "bench_gram.json"),
                            json.dumps(res, indent=1, default=str))
    files.atomic_write_text(os.path.join(out, "bench_gram.md"), table + "\n")
  return 0
