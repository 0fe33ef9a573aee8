"""What every benchmark family shares: the config, timers, references, the
machine record and the markdown helpers.

Timers block on results and exclude compilation (one warm-up call);
contenders that are compared are timed interleaved (``paired_timings_ms``)
so that they see the same background load on a shared machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from typing import Any, Callable

import jax
import numpy as np

from spectral_jax import linalg

# The tree: per layer (fan_in, fan_out) matrices of a width-256 block.
SMALL_TREE_SHAPES = ((256, 768), (256, 256), (256, 1024), (1024, 256))
GPT2_SMALL_SHAPES = ((768, 2304), (768, 768), (768, 3072), (3072, 768))
NS_PRESETS = ("jordan", "polar_express", "dion", "cubic")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """What to measure. Defaults: the quick CPU size."""

  seed: int = 0
  reps: int = 10                 # Timed calls per measurement (median).
  shapes: tuple = SMALL_TREE_SHAPES
  steps: tuple = (3, 4, 5, 6, 7, 8)
  # (schedule, start normalisation) pairs of the Pareto table.
  presets: tuple = (("jordan", "frobenius"), ("polar_express", "frobenius"),
                    ("polar_express", "schatten8"), ("dion", "frobenius"))
  forms: tuple = ("auto",)       # Newton–Schulz gram_form: auto/direct/gram.
  exact: tuple = ("svd", "eigh", "qdwh", "auto")
  layers: int = 6
  gpt2: bool = False
  gpt2_reps: int = 3
  learning_rate: float = 0.02
  # GPT training step (preset cpu-small): timed reps per optimizer, 0 = skip;
  # TrainConfig overrides as ((field, value), ...) (tests: a tiny model).
  gpt_reps: int = 5
  gpt_track: bool = True  # Also time the diagnostics (track) function.
  gpt_overrides: tuple = ()
  # Gram restarts vs direct form (errors and FLOPs, no timing); () = skip.
  gram_shapes: tuple = ((256, 1024),)
  gram_steps: tuple = (5, 20)

  @classmethod
  def quick(cls) -> "BenchConfig":
    # GPT: compiling the three cpu-small steps dominates; the track fn (its
    # compile and seconds-long calls on a loaded CPU) is left to the full run.
    return cls(reps=5, steps=(3, 4, 5, 6, 8), gpt_reps=2, gpt_track=False)

  @classmethod
  def full(cls) -> "BenchConfig":
    return cls(presets=tuple((p, n) for p in NS_PRESETS
                             for n in linalg.NS_NORMS),
               forms=("direct", "gram"), gpt2=True,
               gram_shapes=((256, 1024), (768, 3072)),
               gram_steps=(5, 8, 12, 20))


# ------------------------------------------------------------------ timing ---
def timings_ms(fn: Callable, *args, reps: int = 10) -> tuple[float, float]:
  """(median, min) wall time in ms of ``fn(*args)`` over ``reps`` calls after
  one warm-up call (compilation excluded); results are blocked on. On a
  shared machine the min is the better estimate of the uncontended cost."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def paired_timings_ms(calls, reps: int = 10) -> list[tuple[float, float]]:
  """``timings_ms`` of several ``(fn, args)`` calls, interleaved call by call
  (A, B, A, B, ...) so that every contender sees the same background load:
  ratios between them stay meaningful on a shared machine."""
  for fn, args in calls:
    jax.block_until_ready(fn(*args))
  times = [[] for _ in calls]
  for _ in range(reps):
    for k, (fn, args) in enumerate(calls):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[k].append(time.perf_counter() - t0)
  return [(1e3 * float(np.median(t)), 1e3 * float(np.min(t))) for t in times]


def median_ms(fn: Callable, *args, reps: int = 10) -> float:
  """Median wall time (ms), see ``timings_ms``."""
  return timings_ms(fn, *args, reps=reps)[0]


# -------------------------------------------------------------- references ---
def ref_polar(g: np.ndarray) -> np.ndarray:
  """The exact polar factor in float64 (NumPy SVD), batched."""
  u, _, vh = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vh


def rel_err(a, b) -> float:
  """‖a − b‖_F / ‖b‖_F in float64."""
  a = np.asarray(a, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_matrices(shape, rng) -> dict[str, np.ndarray]:
  """Gaussian, and Gaussian × diag(logspace(0, -3)) (a decaying spectrum,
  like momentum: the NS5 check of arXiv:2512.04299's released code), in
  float32, of ``shape``."""
  m, n = shape
  g = rng.standard_normal((m, n))
  decay = np.logspace(0, -3, min(m, n))
  u, _ = np.linalg.qr(rng.standard_normal((m, min(m, n))))
  v, _ = np.linalg.qr(rng.standard_normal((n, min(m, n))))
  return {"gaussian": g.astype(np.float32),
          "logspace": ((u * decay) @ v.T).astype(np.float32)}


def form_arg(form: str):
  """A bench form name -> ``newton_schulz``'s ``gram_form`` argument."""
  return {"auto": None, "direct": False, "gram": True}[form]


# ----------------------------------------------------------------- machine ---
def machine_info() -> dict[str, Any]:
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return {"nproc": os.cpu_count(), "cpu": cpu,
          "backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()],
          "jax": jax.__version__,
          "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          "loadavg_start": list(os.getloadavg())}


# ---------------------------------------------------------------- markdown ---
def header_markdown(res: dict[str, Any]) -> list[str]:
  """bench.md's title and the machine/config lines."""
  mi = res["machine"]
  return ["# spectral-jax bench", "",
          f"- date (UTC): {mi['date_utc']}; backend {mi['backend']}; "
          f"{mi['nproc']} × {mi['cpu']}; jax {mi['jax']}",
          f"- load average at start: {mi['loadavg_start']} (shared machine: "
          "timings are noisy)", f"- config: {res['config']}", ""]


def fmt_err(e: dict[str, float]) -> str:
  return " / ".join(f"{v:.2e}" for v in e.values())


def table(header: str, rows) -> list[str]:
  """A markdown table: ``header`` like ``"| a | b |"``, then its rule, then
  the ``rows`` (already formatted lines)."""
  rule = "|" + "---|" * (header.count("|") - 1)
  return [header, rule, *rows]
