"""Family "gpt_step": ms per full training step of the default GPT.

AdamW, Muon and SpecGD on ``spectral_jax.training``'s preset ``cpu-small``,
timed interleaved, and the cost of the diagnostics tracking function.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench import core


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
  for name, (med, low) in zip(names, core.paired_timings_ms(calls, reps=reps)):
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


def measure(cfg: core.BenchConfig, rng, log) -> dict[str, Any]:
  del rng  # The step's own seed: cfg.seed.
  if not cfg.gpt_reps:
    return {"gpt_train_step": None}
  log("GPT training step: adamw vs muon vs specgd ...")
  return {"gpt_train_step": bench_gpt_train_step(
      cfg.gpt_reps, cfg.seed, cfg.gpt_track, **dict(cfg.gpt_overrides))}


def markdown(res: dict[str, Any]) -> list[str]:
  return gpt_step_markdown(res.get("gpt_train_step"))


def summary(res: dict[str, Any]) -> list[str]:
  g = res.get("gpt_train_step")
  if g is None:
    return []
  return [f"gpt step: adamw {g['adamw_ms']:.1f} ms, muon "
          f"{g['muon_ms']:.1f} ms ({g['muon_over_adamw']:.2f}x), "
          f"specgd {g['specgd_ms']:.1f} ms "
          f"({g['specgd_over_adamw']:.2f}x)"]
