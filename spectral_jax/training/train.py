"""NanoGPT-style training in JAX with AdamW, Muon or SpecGD, and spectral tracking.

``train(config, out_dir)`` trains :class:`spectral_jax.models.GPT` (or any NNX
language model given by ``model_fn``) on a :class:`~spectral_jax.training.data.TokenData`
source and writes, under ``out_dir``:

  * ``metrics.jsonl``: one JSON object per logged step — ``train_loss`` (mean
    over the steps since the previous row), ``val_loss``, ``tokens_per_s``,
    and on tracked steps ``st`` (stable rank of every captured activation, per
    layer) and ``nr`` (nuclear rank of every raw gradient, per layer);
  * ``ckpt/<step>/``: orbax checkpoints (``--ckpt-every``), for ``resume``;
  * ``summary.json`` and figures (``loss.png``, or what ``figures`` writes).

The parts: :mod:`~spectral_jax.training.config` (the configuration and
presets), :mod:`~spectral_jax.training.optimizers` (the optimizers by name)
and :mod:`~spectral_jax.training.schedules`,
:mod:`~spectral_jax.training.steps` (model, loss, training step),
:mod:`~spectral_jax.training.tracking` (spectral tracking, on
:mod:`spectral_jax.diagnostics`), :mod:`~spectral_jax.training.metrics`
(the metrics file); this module is the loop. Same data order for every
optimizer: batches are a function of (seed, step).

Tracking runs a separate jitted function on tracked steps only (one extra
forward/backward on the step's batch, with activations captured through
``nnx.capture``); the training step itself never changes, so with tracking
off it costs nothing. Its wall time is reported in ``summary.json``.

Sharding and multi-host use: see :mod:`spectral_jax.training.sharding`.

References:
  Davis & Drusvyatskiy, arXiv:2512.04299 (§1.2.1).
  Jordan et al., modded-nanogpt; Loshchilov & Hutter, AdamW, arXiv:1711.05101.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from spectral_jax.training import checkpoint as ckpt_lib
from spectral_jax.training import data as data_lib
from spectral_jax.training import distributed
from spectral_jax.training import metrics as metrics_lib
from spectral_jax.training import sharding as shard_lib
from spectral_jax.training import summary as summary_lib
from spectral_jax.training.summary import Tally
# The names below are re-exported: ``spectral_jax.training.train`` was one
# module, and tests, benchmarks and experiments import them from here.
from spectral_jax.training.config import PRESETS
from spectral_jax.training.config import TrainConfig
from spectral_jax.training.config import preset
from spectral_jax.training.metrics import read_metrics
from spectral_jax.training.optimizers import OPTIMIZERS
from spectral_jax.training.optimizers import hidden_dimension_numbers
from spectral_jax.training.optimizers import hidden_matrix_labels
from spectral_jax.training.optimizers import make_optimizer
from spectral_jax.training.schedules import lr_multiplier
from spectral_jax.training.schedules import momentum_schedule
from spectral_jax.training.steps import TrainState
from spectral_jax.training.steps import default_model_fn
from spectral_jax.training.steps import init_model
from spectral_jax.training.steps import make_loss_fn
from spectral_jax.training.steps import make_train_step
from spectral_jax.training.steps import padded_vocab
from spectral_jax.training.tracking import make_track_fn

__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "TrainConfig",
    "TrainState",
    "default_model_fn",
    "hidden_dimension_numbers",
    "hidden_matrix_labels",
    "init_model",
    "lr_multiplier",
    "make_loss_fn",
    "make_optimizer",
    "make_track_fn",
    "make_train_step",
    "momentum_schedule",
    "padded_vocab",
    "preset",
    "read_metrics",
    "train",
]

Figures = Callable[[list, Any, str], list]


def train(config: TrainConfig, out_dir, *, resume: bool = False,
          model_fn=None, data: data_lib.TokenData | None = None,
          stop_after: int | None = None, progress: bool = True,
          plots: bool = True, figures: Figures | None = None) -> dict:
  """Trains and returns the summary (also written to ``out_dir/summary.json``).

  Args:
    config: a :class:`TrainConfig`.
    out_dir: output folder (created; must be writable; locked for the run).
    resume: continue from the latest checkpoint in ``out_dir/ckpt``; the
      metrics then equal those of an uninterrupted run.
    model_fn: ``(config, vocab_size, rngs) -> nnx.Module`` mapping (B, T)
      token ids to logits; default :class:`spectral_jax.models.GPT`.
    data: a token source; default ``load_data(config.data)``.
    stop_after: stop (as if interrupted) once this many steps are done,
      after checkpointing; for tests of ``resume``.
    progress: show a tqdm bar.
    plots: write figures at the end.
    figures: ``(rows, out_dir, title) -> [paths]``, the figures to write
      from the metrics rows; default
      :func:`~spectral_jax.training.metrics.write_loss_figure`.

  Returns:
    dict with final losses, timing (``tokens_per_s``, ``track_overhead``),
    and paths.
  """
  out = ckpt_lib.check_writable(out_dir)
  # Several processes of one run share the folder: process 0 holds the lock.
  lock = (ckpt_lib.RunLock(out) if distributed.is_primary()
          else contextlib.nullcontext())
  with lock, _deferred_interrupt() as interrupted:
    return _train_locked(config, out, resume, model_fn, data, stop_after,
                         progress, (figures or metrics_lib.write_loss_figure)
                         if plots else None, interrupted)


@contextlib.contextmanager
def _deferred_interrupt():
  """Ctrl-C stops the run between steps, after a checkpoint.

  A KeyboardInterrupt raised while XLA's threads run a step (or compile)
  could end in a segmentation fault at interpreter exit (issue 18: 5 of 10
  tries, 0.3–1 s after the first metrics row). The first SIGINT only sets
  the returned event; the loop checkpoints at the next step boundary and
  raises KeyboardInterrupt there. A second SIGINT interrupts at once. Only
  in the main thread (signal handlers can be set nowhere else).
  """
  event = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield event
    return

  def handler(signum, frame):
    del signum, frame
    if event.is_set():
      raise KeyboardInterrupt
    event.set()
    print("\ninterrupt: stopping after this step with a checkpoint (Ctrl-C "
          "again to abort now)", file=sys.stderr, flush=True)

  previous = signal.signal(signal.SIGINT, handler)
  try:
    yield event
  finally:
    signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------
# Set-up: what stays fixed for the run, what changes, checkpoints.
# --------------------------------------------------------------------------
class _Run(NamedTuple):
  """What the loop needs and never changes."""
  config: TrainConfig
  data: data_lib.TokenData
  rest: Any                    # the model's non-parameter state.
  step_fn: Callable            # jitted, state donated.
  eval_fn: Callable            # jitted loss.
  track_fn: Callable
  put: Callable                # host batch -> device (sharded on a mesh).
  val: list                    # validation batches, on device.
  metrics_path: Any
  expect: dict                 # what a checkpoint must match to resume.


class _Saver:
  """The run's checkpoints: opened when asked for (or on an interrupt)."""

  def __init__(self, run: _Run, ckpt_dir, wanted: bool):
    self.run, self.ckpt_dir = run, ckpt_dir
    self.checkpointer = ckpt_lib.Checkpointer(ckpt_dir) if wanted else None

  def save(self, step: int, state, pending) -> None:
    if self.checkpointer is None:  # --ckpt-every 0: one checkpoint, now.
      self.checkpointer = ckpt_lib.Checkpointer(self.ckpt_dir)
    meta = dict(self.run.expect, data_seed=self.run.config.seed,
                pending_losses=pending)
    self.checkpointer.save(step, state, meta)

  def close(self) -> None:
    if self.checkpointer is not None:
      self.checkpointer.close()


def _setup(config: TrainConfig, out, model_fn, data):
  """``(run, state)``: model, optimizer, compiled functions, batches."""
  data = data if data is not None else data_lib.load_data(config.data)
  graphdef, params, rest = init_model(config, data.vocab_size, model_fn)
  mesh = shard_lib.make_mesh(config.mesh) if config.mesh else None
  tx = make_optimizer(config, params, mesh)
  x_sharding = None
  if mesh is not None:
    params = jax.device_put(params, shard_lib.param_shardings(params, mesh))
    x_sharding = shard_lib.batch_sharding(mesh, config.batch_size)
  state = TrainState(params, jax.jit(tx.init)(params),
                     jax.random.key_data(jax.random.key(config.seed)))
  if mesh is not None:
    # Leaves the params do not place (step counts, the key) are replicated
    # over the mesh: one jitted step cannot mix mesh and single devices.
    state = jax.device_put(state, shard_lib.on_mesh(state, mesh))
  state_shardings = jax.tree.map(lambda a: a.sharding, state)
  put = lambda a: jax.device_put(a, x_sharding) if x_sharding is not None else a
  # The data by content, not by path only: a file rewritten between a kill
  # and --resume is refused.
  expect = {"config": metrics_lib.jsonable(config.fingerprint()),
            "data": data.name, "data_content": data.fingerprint()}
  run = _Run(
      config=config, data=data, rest=rest,
      step_fn=jax.jit(make_train_step(graphdef, tx, config.qk_clip),
                      donate_argnums=(0,),
                      out_shardings=(state_shardings, None)),
      eval_fn=jax.jit(make_loss_fn(graphdef)),
      track_fn=make_track_fn(graphdef), put=put,
      val=[(put(x), put(y)) for x, y in data.val_batches(
          config.val_batches, config.batch_size, config.context)],
      metrics_path=out / "metrics.jsonl", expect=expect)
  return run, state


def _start(run: _Run, out, saver: _Saver, state, resume: bool):
  """``(state, start step, pending losses, resumed?)``, or a finished summary.

  A run that finished without checkpoints has nothing left to do; one
  interrupted before its first checkpoint starts over (rather than leave the
  folder stuck between "already holds a run" and "no checkpoint").
  """
  if not resume:
    return state, 0, [], False
  ckpt = saver.checkpointer
  if ckpt.latest_step() is None and (out / "summary.json").exists():
    print(f"--resume: the run in {out} has finished; nothing to do.",
          file=sys.stderr)
    saver.close()
    return json.loads((out / "summary.json").read_text())
  if ckpt.latest_step() is None:
    print(f"--resume: no checkpoint in {saver.ckpt_dir}; starting the run "
          "over.", file=sys.stderr)
    metrics_lib.rewrite_rows(run.metrics_path, [])
    return state, 0, [], False
  state, meta = ckpt.restore(state, run.expect)
  start = int(meta["step"])
  metrics_lib.rewrite_rows(run.metrics_path, [
      r for r in read_metrics(out) if r["step"] < start])
  return state, start, list(meta["pending_losses"]), True


# --------------------------------------------------------------------------
# The loop: per step, its metrics row, then one update.
# --------------------------------------------------------------------------
def _train_locked(config, out, resume, model_fn, data, stop_after, progress,
                  figures, interrupted):
  t_start = time.perf_counter()
  ckpt_dir = out / "ckpt"
  if not resume and ((out / "metrics.jsonl").exists() or (
      ckpt_dir.exists() and any(ckpt_dir.iterdir()))):
    raise ValueError(f"--out {out} already holds a run (metrics.jsonl or "
                     "ckpt/); pass --resume to continue it or choose a new folder.")
  # Every process has looked at the folder before process 0 writes to it.
  distributed.barrier("spectral_jax.train.start")
  run, state = _setup(config, out, model_fn, data)
  saver = _Saver(run, ckpt_dir, bool(
      config.ckpt_every or resume or stop_after is not None))
  started = _start(run, out, saver, state, resume)
  if isinstance(started, dict):
    return started
  state, start, pending, resume = started
  tally = Tally(pending=pending)
  bar = _progress(progress, config.steps, start, config.optimizer)
  step = start
  while True:
    done = step >= config.steps
    if not done and _stop(run, saver, bar, state, step, tally, stop_after,
                          interrupted):
      return {"stopped_at": step}
    x, y = _log_row(run, state, step, done, tally)
    if done:
      break
    state = _update(run, state, step, x, y, tally)
    step += 1
    if bar is not None:
      bar.update(1)
      bar.set_postfix(loss=f"{tally.pending[-1]:.3f}")
    periodic = config.ckpt_every and step % config.ckpt_every == 0
    final = step == config.steps and (config.ckpt_every or resume)
    if saver.checkpointer is not None and (periodic or final):
      # Saved before this step's row consumes the pending losses (the final
      # checkpoint included), so a resume from here rewrites that row whole.
      saver.save(step, state, tally.pending)
  if bar is not None:
    bar.close()
  saver.close()
  return summary_lib.finish(run.config, run.data.name, out, state.params, tally,
                            figures, t_start, start if resume else None)


def _stop(run, saver, bar, state, step, tally, stop_after, interrupted):
  """Checkpoints and stops at ``stop_after``; on Ctrl-C, then raises."""
  if stop_after is not None and step >= stop_after:
    # Checkpoint before this step's row consumes the pending losses, as the
    # periodic checkpoints do (they are saved right after the update).
    saver.save(step, state, tally.pending)
    saver.close()
    return True
  if interrupted.is_set():
    saver.save(step, state, tally.pending)
    saver.close()
    if bar is not None:
      bar.close()
    print(f"stopped at step {step}; continue with --resume.",
          file=sys.stderr)
    raise KeyboardInterrupt
  return False


def _log_row(run: _Run, state, step: int, done: bool, tally: Tally):
  """Writes the row for ``step`` (state after ``step`` updates); its batch."""
  config = run.config
  row = {"step": step}
  if tally.pending and (step % config.log_every == 0 or done):
    row["train_loss"] = float(np.mean(np.asarray(tally.pending, np.float64)))
    tally.pending = []
    if tally.time_since > 0:
      row["tokens_per_s"] = round(tally.steps_since * summary_lib.tokens_per_step(
          config) / tally.time_since, 1)
    tally.steps_since, tally.time_since = 0, 0.0
  if (config.eval_every and step % config.eval_every == 0) or done:
    t0 = time.perf_counter()
    tally.last_val = float(np.mean([
        float(run.eval_fn(state.params, run.rest, x, y)) for x, y in run.val]))
    tally.timing["eval_s"] += time.perf_counter() - t0
    row["val_loss"] = tally.last_val
  x_np, y_np = run.data.train_batch(config.seed, step, config.batch_size,
                                    config.context)
  x, y = run.put(x_np), run.put(y_np)
  if config.track_every and (step % config.track_every == 0 or done):
    t0 = time.perf_counter()
    _, st, nr = run.track_fn(state.params, run.rest, x, y)
    row["st"], row["nr"] = metrics_lib.to_json(st), metrics_lib.to_json(nr)
    tally.timing["track_s"] += time.perf_counter() - t0
  if len(row) > 1:
    metrics_lib.append_row(run.metrics_path, row)
  return x, y


def _update(run: _Run, state, step: int, x, y, tally: Tally):
  """One training step, timed (the first call, which compiles, apart)."""
  t0 = time.perf_counter()
  state, loss = run.step_fn(state, run.rest, x, y)
  loss = float(loss)  # syncs, so the timing is honest.
  dt = time.perf_counter() - t0
  if tally.first_call:
    tally.timing["compile_s"] += dt
    tally.first_call = False
  else:
    tally.timing["train_s"] += dt
    tally.timed_steps += 1
    tally.steps_since += 1
    tally.time_since += dt
  if not math.isfinite(loss):
    raise FloatingPointError(f"{run.config.optimizer}: loss is {loss} at "
                             f"step {step}; lower the learning rate.")
  tally.pending.append(loss)
  return state


def _progress(enabled, total, start, desc):
  if not enabled:
    return None
  try:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return tqdm(total=total, initial=start, desc=desc, leave=False)
