"""``spectral-jax bench``: speed and accuracy of polar factors and Muon.

Measures in one run, side by side (GitHub issue 7):

1. Pareto table per matrix shape: every polar method (exact ``svd`` /
   ``eigh`` / ``qdwh`` / ``auto``, and Newton–Schulz presets at 3–8 steps) →
   relative Frobenius error to the exact polar factor (NumPy float64 SVD) vs
   median milliseconds of the jitted call.
2. ``spectral_jax.muon`` vs ``optax.contrib.muon`` with identical settings on
   a 6-layer width-256 transformer tree (per layer 256×768, 256×256, 256×1024,
   1024×256), with one leaf per layer and with the layers stacked as (6,·,·),
   and (unless ``--quick``) on a GPT-2-small-shaped tree (12 layers, width
   768).
3. Achieved GFLOP/s of our orthogonalisation vs plain ``jnp.matmul`` of the
   same shapes.
4. ms per full training step of the default GPT (``spectral_jax.training``
   preset ``cpu-small``) with AdamW, Muon and SpecGD, timed interleaved, and
   the cost of the diagnostics tracking function (``bench_gpt_train_step``).

Writes ``DIR/bench.json`` and ``DIR/bench.md`` atomically and prints the
ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import files
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

  @classmethod
  def quick(cls) -> "BenchConfig":
    # GPT: compiling the three cpu-small steps dominates; the track fn (its
    # compile and seconds-long calls on a loaded CPU) is left to the full run.
    return cls(reps=5, steps=(3, 4, 5, 6, 8), gpt_reps=2, gpt_track=False)

  @classmethod
  def full(cls) -> "BenchConfig":
    return cls(presets=tuple((p, n) for p in NS_PRESETS
                             for n in linalg.NS_NORMS),
               forms=("direct", "gram"), gpt2=True)


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


def _ref_polar(g: np.ndarray) -> np.ndarray:
  u, _, vh = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vh


def _rel_err(a, b) -> float:
  a = np.asarray(a, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_matrices(shape, rng) -> dict[str, np.ndarray]:
  """Gaussian, and Gaussian × diag(logspace(0, -3)) (SPEC §5 A.2: a decaying
  spectrum, like momentum), in float32, of ``shape``."""
  m, n = shape
  g = rng.standard_normal((m, n))
  decay = np.logspace(0, -3, min(m, n))
  u, _ = np.linalg.qr(rng.standard_normal((m, min(m, n))))
  v, _ = np.linalg.qr(rng.standard_normal((n, min(m, n))))
  return {"gaussian": g.astype(np.float32),
          "logspace": ((u * decay) @ v.T).astype(np.float32)}


# ------------------------------------------------------------------ pareto ---
def _form_arg(form: str):
  return {"auto": None, "direct": False, "gram": True}[form]


def pareto_rows(shape, cfg: BenchConfig, rng) -> list[dict[str, Any]]:
  """One row per (method, schedule, steps, norm, form): error per test
  spectrum and median ms, for float32 matrices of ``shape``."""
  mats = test_matrices(shape, rng)
  refs = {k: _ref_polar(v) for k, v in mats.items()}
  rows = []

  def measure(label, fn, **info):
    f = jax.jit(fn)
    errs = {k: _rel_err(f(jnp.asarray(v)), refs[k]) for k, v in mats.items()}
    ms = median_ms(f, jnp.asarray(mats["gaussian"]), reps=cfg.reps)
    rows.append({"shape": list(shape), "method": label, "ms": ms,
                 "err": errs, **info})

  for method in cfg.exact:
    measure(method, lambda x, m=method: linalg.polar(x, m), steps=None)
  for preset, norm in cfg.presets:
    for form in cfg.forms:
      for steps in cfg.steps:
        fn = lambda x, p=preset, s=steps, nm=norm, fm=form: (
            linalg.newton_schulz(x, s, p, norm=nm, gram_form=_form_arg(fm)))
        label = f"ns:{preset}" + ("" if norm == "frobenius" else f"+{norm}")
        measure(label, fn, steps=steps, norm=norm, form=form,
                flops=int(linalg.newton_schulz_flops(
                    shape, steps, coeffs=preset, norm=norm,
                    gram_form=_form_arg(form))))
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


# ------------------------------------------------------------ form compare ---
def form_rows(shapes, steps, reps, rng, batch=()) -> list[dict[str, Any]]:
  """Direct vs Gram-form Newton–Schulz (polar_express and jordan), timed
  interleaved: ms, executed FLOPs, error to exact polar (Gaussian input)."""
  rows = []
  forms = ("direct", "gram")
  for shape in shapes:
    g = rng.standard_normal((*batch, *shape)).astype(np.float32)
    ref = _ref_polar(g)
    for preset in ("jordan", "polar_express"):
      fns = [jax.jit(lambda x, p=preset, fm=form: linalg.newton_schulz(
          x, steps, p, gram_form=_form_arg(fm))) for form in forms]
      times = paired_timings_ms([(f, (jnp.asarray(g),)) for f in fns],
                                reps=reps)
      for form, f, (med, _) in zip(forms, fns, times):
        rows.append({
            "shape": [*batch, *shape], "preset": preset, "form": form,
            "steps": steps, "ms": med,
            "flops": int(linalg.newton_schulz_flops(
                (*batch, *shape), steps, coeffs=preset,
                gram_form=_form_arg(form))),
            "err": _rel_err(f(jnp.asarray(g)), ref)})
  return rows


# -------------------------------------------------------------- throughput ---
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
    (t_mm, t_mm_min), (t_ns, t_ns_min) = paired_timings_ms(
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


# -------------------------------------------------------------------- muon ---
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
    for name, (med, low) in zip(names, paired_timings_ms(calls, reps=reps)):
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


def bench_gpt_train_step(reps: int = 5, seed: int = 0, track: bool = True,
                         preset: str = "cpu-small", vocab_size: int = 256,
                         **overrides) -> dict[str, Any]:
  """ms per full training step of the default GPT with AdamW, Muon, SpecGD.

  One jitted ``make_train_step`` per optimizer (same model, initial params
  and batch), timed interleaved with ``paired_timings_ms`` (A, B, C, A, B,
  C, ... after one warm-up call each; compilation excluded), plus, with
  ``track``, the diagnostics function ``make_track_fn`` in the same rotation.
  The step is jitted without buffer donation so every call can reuse the same
  state (the state is not advanced: the cost of a step does not depend on it).

  Args:
    reps: timed calls per contender.
    seed: seed of the model init and of the random token batch.
    track: also time the tracking function (one tracked step = the plain
      step + the track call).
    preset: ``spectral_jax.training`` preset, ``overrides`` applied on top
      (tests pass a tiny model).
    vocab_size: token vocabulary (256 = the default byte-level data; padded
      to ``pad_vocab_to`` as in training). The tokens are random: a step's
      cost depends on shapes only, so the corpus is not loaded.

  Returns:
    dict with per optimizer ``{name}_ms`` / ``{name}_min_ms``, the ratios
    ``muon_over_adamw`` / ``specgd_over_adamw`` (median-based) and their
    ``*_min`` versions, ``target_muon_over_adamw`` (issue 7: ≤ 1.15 on CPU)
    and ``target_met``; with ``track``: ``track_ms``, ``track_min_ms`` and
    ``track_over_step`` = track / plain step of the config's optimizer
    (the extra cost of one tracked step, as a fraction), and
    ``track_overhead_amortised`` = that / ``track_every``.
  """
  if not isinstance(reps, int) or reps < 1:
    raise ValueError(f"reps must be an int >= 1, got {reps!r}.")
  # Lazy: the training stack (flax, orbax) is only needed for this section.
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top

  base = train_lib.preset(preset, seed=seed, **overrides)
  graphdef, params, rest = train_lib.init_model(base, vocab_size)
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, vocab_size, (base.batch_size, base.context + 1))
  x = jnp.asarray(tokens[:, :-1], jnp.int32)
  y = jnp.asarray(tokens[:, 1:], jnp.int32)
  key = jax.random.key_data(jax.random.key(seed))
  calls = []
  for name in train_lib.OPTIMIZERS:
    tx = train_lib.make_optimizer(
        dataclasses.replace(base, optimizer=name), params)
    state = train_lib.TrainState(params, jax.jit(tx.init)(params), key)
    step = jax.jit(train_lib.make_train_step(graphdef, tx))
    calls.append((step, (state, rest, x, y)))
  names = list(train_lib.OPTIMIZERS)
  if track:
    calls.append((train_lib.make_track_fn(graphdef), (params, rest, x, y)))
    names.append("track")
  res: dict[str, Any] = {
      "preset": preset, "overrides": dict(overrides), "reps": reps,
      "n_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
      "batch_tokens": int(x.size),
      "n_layer": base.n_layer, "d_model": base.d_model,
      "context": base.context, "batch_size": base.batch_size}
  for name, (med, low) in zip(names, paired_timings_ms(calls, reps=reps)):
    res[f"{name}_ms"], res[f"{name}_min_ms"] = med, low
  for name in ("muon", "specgd"):
    res[f"{name}_over_adamw"] = res[f"{name}_ms"] / res["adamw_ms"]
    res[f"{name}_over_adamw_min"] = res[f"{name}_min_ms"] / res["adamw_min_ms"]
  res["target_muon_over_adamw"] = 1.15
  res["target_met"] = bool(res["muon_over_adamw"] <= 1.15)
  if track:
    plain = res[f"{base.optimizer}_ms"]
    res["track_step_optimizer"] = base.optimizer
    res["track_over_step"] = res["track_ms"] / plain
    res["track_over_step_min"] = (res["track_min_ms"] /
                                  res[f"{base.optimizer}_min_ms"])
    res["track_every"] = base.track_every
    res["track_overhead_amortised"] = (
        res["track_over_step"] / base.track_every if base.track_every
        else 0.0)
  return res


def gpt_step_markdown(r: dict[str, Any] | None) -> list[str]:
  """The bench.md section of ``bench_gpt_train_step``'s result."""
  out = ["## GPT training step: AdamW vs Muon vs SpecGD", ""]
  if r is None:
    return out + ["skipped (gpt_reps = 0)", ""]
  out += [f"Preset `{r['preset']}` {r['overrides'] or ''} "
          f"({r['n_layer']} layers × width {r['d_model']}, "
          f"{r['n_params']:,} params, {r['batch_tokens']} tokens per step); "
          f"{r['reps']} interleaved reps after one warm-up call each.", "",
          "| optimizer | median ms/step | min ms/step | / AdamW | "
          "/ AdamW (min) |", "|---|---|---|---|---|",
          f"| adamw | {r['adamw_ms']:.1f} | {r['adamw_min_ms']:.1f} | 1.00 | "
          "1.00 |"]
  for name in ("muon", "specgd"):
    out.append(f"| {name} | {r[f'{name}_ms']:.1f} | {r[f'{name}_min_ms']:.1f}"
               f" | {r[f'{name}_over_adamw']:.2f} | "
               f"{r[f'{name}_over_adamw_min']:.2f} |")
  out += ["", f"Target Muon/AdamW ≤ {r['target_muon_over_adamw']:.2f}: "
          f"{'met' if r['target_met'] else 'not met'} (median-based).", ""]
  if "track_ms" not in r:
    out += ["Tracking not timed (gpt_track off, as in --quick).", ""]
  else:
    out += [f"Tracking: track fn {r['track_ms']:.1f} ms (min "
            f"{r['track_min_ms']:.1f}) = {r['track_over_step']:.2f}× a plain "
            f"{r['track_step_optimizer']} step (min-based "
            f"{r['track_over_step_min']:.2f}×); every "
            f"{r['track_every']} steps: "
            f"{100 * r['track_overhead_amortised']:.1f} % of training time.",
            ""]
  return out


# ----------------------------------------------------------------- reports ---
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


def _fmt_err(e: dict[str, float]) -> str:
  return " / ".join(f"{v:.2e}" for v in e.values())


def render_markdown(res: dict[str, Any]) -> str:
  """bench.md from the results dict."""
  mi = res["machine"]
  out = ["# spectral-jax bench", "",
         f"- date (UTC): {mi['date_utc']}; backend {mi['backend']}; "
         f"{mi['nproc']} × {mi['cpu']}; jax {mi['jax']}",
         f"- load average at start: {mi['loadavg_start']} (shared machine: "
         "timings are noisy)", f"- config: {res['config']}", ""]
  out += ["## Pareto: error to exact polar (gaussian / logspace) vs median ms",
          ""]
  for key, rows in res["pareto"].items():
    front = {id(r) for r in pareto_front(rows)}
    out += [f"### {key} (float32)", "",
            "| method | steps | form | ms | rel. error | Pareto |",
            "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["ms"]):
      out.append(f"| {r['method']} | {r.get('steps') or ''} | "
                 f"{r.get('form', '')} | {r['ms']:.2f} | {_fmt_err(r['err'])} "
                 f"| {'*' if id(r) in front else ''} |")
    out.append("")
  if res.get("forms"):
    out += ["## Newton–Schulz: direct vs Gram form (5 steps)", "",
            "| shape | preset | form | ms | GFLOP | rel. error |",
            "|---|---|---|---|---|---|"]
    for r in res["forms"]:
      out.append(f"| {r['shape']} | {r['preset']} | {r['form']} | "
                 f"{r['ms']:.2f} | {r['flops'] / 1e9:.3f} | {r['err']:.3e} |")
    out.append("")
  out += ["## Orthogonalisation throughput vs plain matmul", "",
          "Median of the timed calls; `ratio (min)` uses the fastest call of "
          "each (less sensitive to other processes on a shared machine).", "",
          "| shape | matmul GFLOP/s | NS GFLOP/s (executed) | ratio | "
          "ratio (min) | NS effective GFLOP/s (direct-form FLOPs) | "
          "eff. ratio |",
          "|---|---|---|---|---|---|---|"]
  for r in res["throughput"]:
    out.append(f"| {r['shape']} | {r['matmul_gflops']:.1f} | "
               f"{r['ns_gflops']:.1f} | {r['ratio']:.2f} | "
               f"{r['min_ratio']:.2f} | "
               f"{r['ns_eff_gflops']:.1f} | {r['eff_ratio']:.2f} |")
  out += ["", "## Muon update: spectral_jax.muon vs optax.contrib.muon", "",
          f"Newton–Schulz work of the small tree (optax's direct form): "
          f"{res['muon_tree_gflop']:.1f} GFLOP.", "",
          "| tree | layout | optax ms | ours ms | ours/optax | "
          "ours/optax (min) | max rel. diff |",
          "|---|---|---|---|---|---|---|"]
  for r in res["muon"]:
    out.append(f"| {r['tree']} | {r['layout']} | {r['optax_ms']:.1f} | "
               f"{r['ours_ms']:.1f} | {r['ratio']:.2f} | "
               f"{r['min_ratio']:.2f} | {r['max_rel_diff']:.1e} |")
  out += [""] + gpt_step_markdown(res.get("gpt_train_step"))
  return "\n".join(out)


def run(cfg: BenchConfig, out_dir: str, args=None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Run every measurement of ``cfg``; write bench.json / bench.md."""
  rng = np.random.default_rng(cfg.seed)
  res: dict[str, Any] = {"machine": machine_info(),
                         "config": dataclasses.asdict(cfg)}
  res["pareto"] = {}
  for shape in cfg.shapes:
    key = "x".join(map(str, shape))
    log(f"pareto {key} ...")
    res["pareto"][key] = pareto_rows(shape, cfg, rng)
  log("direct vs gram form ...")
  res["forms"] = form_rows(cfg.shapes, 5, cfg.reps, rng, batch=(cfg.layers,))
  log("throughput ...")
  res["throughput"] = throughput_rows(cfg.shapes, cfg.layers, 5, cfg.reps,
                                      rng)
  log("muon vs optax ...")
  res["muon"] = muon_rows(cfg.shapes, cfg.layers, cfg.reps, rng,
                          lr=cfg.learning_rate)
  res["muon_tree_gflop"] = muon_tree_flops(cfg.shapes, cfg.layers) / 1e9
  if cfg.gpt2:
    log("muon vs optax, GPT-2 small tree ...")
    res["muon"] += muon_rows(GPT2_SMALL_SHAPES, 12, cfg.gpt2_reps, rng,
                             lr=cfg.learning_rate, tree_name="gpt2_small")
  res["gpt_train_step"] = None
  if cfg.gpt_reps:
    log("GPT training step: adamw vs muon vs specgd ...")
    res["gpt_train_step"] = bench_gpt_train_step(
        cfg.gpt_reps, cfg.seed, cfg.gpt_track, **dict(cfg.gpt_overrides))
  res["loadavg_end"] = list(os.getloadavg())
  files.atomic_write_text(os.path.join(out_dir, "bench.json"),
                json.dumps(res, indent=1, default=str))
  files.atomic_write_text(os.path.join(out_dir, "bench.md"), render_markdown(res))
  return res


def summary_lines(res: dict[str, Any]) -> list[str]:
  lines = []
  for r in res["muon"]:
    lines.append(f"muon {r['tree']}/{r['layout']}: ours {r['ours_ms']:.1f} ms "
                 f"vs optax {r['optax_ms']:.1f} ms -> ratio {r['ratio']:.2f}"
                 f" (min-based {r['min_ratio']:.2f})")
  g = res.get("gpt_train_step")
  if g is not None:
    lines.append(f"gpt step: adamw {g['adamw_ms']:.1f} ms, muon "
                 f"{g['muon_ms']:.1f} ms ({g['muon_over_adamw']:.2f}x), "
                 f"specgd {g['specgd_ms']:.1f} ms "
                 f"({g['specgd_over_adamw']:.2f}x)")
  for r in res["throughput"]:
    lines.append(f"throughput {r['shape']}: NS {r['ns_gflops']:.0f} (eff. "
                 f"{r['ns_eff_gflops']:.0f}) vs matmul "
                 f"{r['matmul_gflops']:.0f} GFLOP/s -> ratio {r['ratio']:.2f}"
                 f" (eff. {r['eff_ratio']:.2f})")
  return lines


# --------------------------------------------------------------------- CLI ---
def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
  if value < 1:
    raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
  return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--quick", action="store_true",
                      help="small CPU run: fewer steps/reps, no GPT-2 tree")
  parser.add_argument("--out", required=True, metavar="DIR",
                      help="directory for bench.json and bench.md")
  parser.add_argument("--reps", type=_positive_int, default=None,
                      help="timed calls per measurement (median)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--mesh", action="append", metavar="SPEC",
                      help="instead: Muon on a simulated CPU mesh, e.g. "
                      "fsdp=8, data=2,fsdp=4 or fsdp=4,model=2 (repeatable; "
                      "experiments/bench_mesh.py)")


def main(args) -> int:
  from experiments.cli import UsageError  # pylint: disable=g-import-not-at-top
  from experiments.outdir import prepare_out_dir  # pylint: disable=g-import-not-at-top
  cfg = BenchConfig.quick() if args.quick else BenchConfig.full()
  if args.reps is not None:
    if args.reps < 1:
      raise UsageError(f"--reps must be >= 1, got {args.reps}")
    cfg = dataclasses.replace(cfg, reps=args.reps)
  cfg = dataclasses.replace(cfg, seed=args.seed)
  # Checked before any benchmarking: a bad --out must not cost the run.
  out = prepare_out_dir(args.out)
  if args.mesh:
    from experiments import bench_mesh  # pylint: disable=g-import-not-at-top
    try:
      return bench_mesh.main_mesh(args.mesh, out,
                                  width=256 if args.quick else 768)
    except ValueError as err:
      raise UsageError(str(err)) from None
  res = run(cfg, out, args)
  for line in summary_lines(res):
    print(line)
  print(f"wrote {os.path.join(out, 'bench.md')}")
  return 0
