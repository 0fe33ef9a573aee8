"""The end of a run: ``summary.json`` (losses, throughput, timings, st(W))."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from spectral_jax import files
from spectral_jax import labels
from spectral_jax import linalg
from spectral_jax.training import distributed
from spectral_jax.training import metrics as metrics_lib
from spectral_jax.training.optimizers import hidden_matrix_labels

if TYPE_CHECKING:
  from spectral_jax.training.config import TrainConfig

__all__ = ["Tally", "finish", "tokens_per_step", "weight_stable_ranks"]


@dataclasses.dataclass
class Tally:
  """What changes from step to step besides the training state; the summary
  reads its timings."""
  pending: list                # losses since the last logged row.
  timing: dict = dataclasses.field(default_factory=lambda: {
      "train_s": 0.0, "track_s": 0.0, "eval_s": 0.0, "compile_s": 0.0})
  timed_steps: int = 0         # steps in train_s (the first call compiles).
  steps_since: int = 0
  time_since: float = 0.0
  first_call: bool = True
  last_val: float | None = None


def tokens_per_step(config: TrainConfig) -> int:
  """Tokens in one training batch."""
  return config.batch_size * config.context


def finish(config: TrainConfig, data_name: str, out, params, tally: Tally,
           figures, t_start: float, resumed_from: int | None) -> dict:
  """Writes ``summary.json`` (and the figures) and returns the summary."""
  timing = tally.timing
  rows = metrics_lib.read_metrics(out)
  train_s, n = timing["train_s"], tally.timed_steps
  summary = {
      "optimizer": config.optimizer,
      "config": metrics_lib.jsonable(dataclasses.asdict(config)),
      "data": data_name,
      "n_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
      "final_val_loss": tally.last_val,
      "final_train_loss": next((r["train_loss"] for r in reversed(rows)
                                if "train_loss" in r), None),
      # None when nothing was trained (e.g. --steps 0): no rate to report.
      "tokens_per_s": (round(n * tokens_per_step(config) / train_s, 1)
                       if n > 0 and train_s > 0 else None),
      "track_overhead": (round(timing["track_s"] / train_s, 4)
                         if train_s > 0 else None),
      "timing_s": {k: round(v, 2) for k, v in timing.items()},
      "wall_s": round(time.perf_counter() - t_start, 2),
      "resumed_from": resumed_from,
      # st(W) of every hidden matrix at the end (paper 3: Muon keeps it higher).
      "weight_stable_rank": weight_stable_ranks(params),
  }
  if not distributed.is_primary():  # Process 0 writes; the others return.
    return summary
  if figures is not None:
    summary["figures"] = figures(rows, out, config.optimizer)
  files.atomic_write_text(out / "summary.json",
                          json.dumps(summary, indent=2) + "\n")
  return summary


def weight_stable_ranks(params) -> dict[str, list[float]]:
  """``{path name: [st(W) per layer]}`` of every hidden matrix."""
  param_labels = hidden_matrix_labels(params)
  out = {}
  for (path, w), lab in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                            jax.tree.leaves(param_labels)):
    if lab == "hidden":
      val = np.atleast_1d(distributed.to_host(
          linalg.stable_rank(w.astype(jnp.float32))))
      out[labels.path_name(path)] = [round(float(v), 4) for v in val]
  return out
