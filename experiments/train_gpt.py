"""``spectral-jax train-gpt``: train the NanoGPT-style model, or compare optimizers.

Examples::

  spectral-jax train-gpt --out /tmp/gpt                       # cpu-small, Muon
  spectral-jax train-gpt --out /tmp/gpt --optimizer adamw --steps 200
  spectral-jax train-gpt --out /tmp/gpt --resume              # continue a run
  spectral-jax train-gpt --out /tmp/cmp --compare adamw,muon,specgd
  spectral-jax train-gpt --out /tmp/gpt --optimizer normuon   # NorMuon
  spectral-jax train-gpt --out /tmp/gpt --qk-clip 100         # + QK-clip, τ = 100
  spectral-jax train-gpt --preset gpt2-small --data fineweb10B/ --out runs/124m

Every field of :class:`spectral_jax.training.config.TrainConfig` is a flag
(``--d-model 192``, ``--track-every 0`` to turn tracking off); the preset
supplies the defaults. ``--mesh data=N,fsdp=M`` shards over N·M devices.
Several processes (hosts) run the same command with ``--coordinator
HOST:PORT --num-processes N --process-id I`` (or JAX's environment
variables); the mesh then spans every process's devices, process 0 writes
metrics, figures and summaries, and all write their checkpoint shards
(:mod:`spectral_jax.training.distributed`).

Measured (2026-11-24, shared 2-core CPU) for the default
``spectral-jax train-gpt --out /tmp/gpt`` (cpu-small: 4 × 128, context 128,
batch 16, 300 Muon steps, 0.85M parameters, tracking every 100 steps):

  * load average ≈ 3–4: 2 min 03 s wall, 163 s CPU, 6.6k tokens/s, tracking
    16 % of training time; validation loss 6.38 → 1.51 nats/byte;
  * load average ≈ 11 (other jobs): 13 min 14 s wall for 170 s of CPU time
    (the process got 21 % of a core).

No accelerator was available when this was written: the ``gpt2-small`` preset
is wired up but has not been run.
"""

from __future__ import annotations

import os

# LAPACK (OpenBLAS) threads spin against other processes on a shared CPU: the
# tracked eigen/singular-value solves ran 40× slower with default threading
# (4 × 256² eigvalsh: 2.7 s vs 0.07 s). Must be set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import json
import pathlib

from experiments.cli import UsageError
from spectral_jax import files

_SKIP_FLAGS = {"preset"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top
  parser.add_argument("--out", required=True, metavar="DIR",
                      help="output folder (metrics.jsonl, ckpt/, figures)")
  parser.add_argument("--preset", default="cpu-small",
                      choices=tuple(train_lib.PRESETS),
                      help="defaults for every field (default: cpu-small)")
  parser.add_argument("--resume", action="store_true",
                      help="continue from the latest checkpoint in DIR/ckpt")
  parser.add_argument("--compare", default=None, metavar="OPT,OPT,…",
                      help="train each optimizer (same data order) into "
                           "DIR/<opt>/ and write DIR/summary.md and "
                           "DIR/val_loss.png")
  parser.add_argument("--no-progress", action="store_true",
                      help="no progress bar")
  multi = parser.add_argument_group(
      "several processes (one per host; JAX_COORDINATOR_ADDRESS, "
      "JAX_NUM_PROCESSES, JAX_PROCESS_ID when not given)")
  multi.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                     help="address of process 0, the same in every process")
  multi.add_argument("--num-processes", default=None, metavar="N",
                     help="how many processes run this command")
  multi.add_argument("--process-id", default=None, metavar="I",
                     help="this process, 0 … N−1 (0 writes the files)")
  group = parser.add_argument_group("configuration (override the preset)")
  for field in dataclasses.fields(train_lib.TrainConfig):
    if field.name in _SKIP_FLAGS:
      continue
    flag = "--" + field.name.replace("_", "-")
    kind = type(field.default)
    if kind is bool:
      group.add_argument(flag, dest=field.name, default=None,
                         type=_parse_bool, metavar="BOOL")
    else:
      group.add_argument(flag, dest=field.name, default=None, type=kind,
                         metavar=field.name.upper())


def _parse_bool(s: str) -> bool:
  if s.lower() in ("1", "true", "yes", "on"):
    return True
  if s.lower() in ("0", "false", "no", "off"):
    return False
  raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def config_from_args(args: argparse.Namespace):
  """The preset with every given flag applied."""
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top
  overrides = {f.name: getattr(args, f.name)
               for f in dataclasses.fields(train_lib.TrainConfig)
               if f.name not in _SKIP_FLAGS
               and getattr(args, f.name, None) is not None}
  try:
    return train_lib.preset(args.preset, **overrides)
  except ValueError as err:
    raise UsageError(str(err)) from None


def train(config, out_dir, **kwargs) -> dict:
  """:func:`spectral_jax.training.train.train` with the paper's figures
  (:mod:`experiments.train_gpt_figures`) when it plots."""
  from experiments import train_gpt_figures  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top
  return train_lib.train(config, out_dir,
                         figures=train_gpt_figures.write_figures, **kwargs)


def run_comparison(config, optimizers, out_dir, *, progress=True,
                   model_fn=None, data=None, resume=False) -> dict:
  """Trains ``config`` once per optimizer into ``out_dir/<opt>``.

  Every arm sees the same batches (they depend on (seed, step) only) and the
  same initial parameters (same seed). Writes ``out_dir/val_loss.png`` and
  ``out_dir/summary.md``. With ``resume``, arm by arm: a finished arm is
  kept, an interrupted one continues from its checkpoint (or starts over if
  it had none), one not yet begun starts.

  Returns:
    ``{"summaries": {opt: summary}, "figure": path, "table": markdown}``.
  """
  from spectral_jax.training import data as data_lib  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import distributed  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top
  out_dir = pathlib.Path(out_dir)
  data = data if data is not None else data_lib.load_data(config.data)
  summaries, rows = {}, {}
  for opt in optimizers:
    cfg = dataclasses.replace(config, optimizer=opt)
    arm = out_dir / opt
    summaries[opt] = train(
        cfg, arm, progress=progress, model_fn=model_fn, data=data,
        resume=resume and arm.exists())
    rows[opt] = train_lib.read_metrics(out_dir / opt)
  table = _table(summaries)
  if not distributed.is_primary():  # Process 0 writes the comparison.
    return {"summaries": summaries, "figure": None, "table": table,
            "metrics": rows}
  figure = _plot_val(rows, out_dir / "val_loss.png", config)
  text = (f"# Optimizer comparison ({config.preset}, {config.steps} steps, "
          f"data {summaries[optimizers[0]]['data']})\n\n"
          f"![validation loss](val_loss.png)\n\n{table}\n")
  files.atomic_write_text(out_dir / "summary.md", text)
  return {"summaries": summaries, "figure": str(figure), "table": table,
          "metrics": rows}


def _num(value, fmt: str) -> str:
  """``value`` formatted, or ``n/a`` where the run had nothing to measure."""
  return "n/a" if value is None else format(value, fmt)


def _table(summaries) -> str:
  lines = ["| optimizer | final val loss | final train loss | tokens/s | "
           "tracking overhead | wall s |", "|---|---|---|---|---|---|"]
  for opt, s in summaries.items():
    val = s["final_val_loss"]
    tr = s["final_train_loss"]
    lines.append(
        f"| {opt} | {val:.4f} | {tr:.4f} | {_num(s['tokens_per_s'], '.0f')} | "
        f"{_num(s['track_overhead'], '.1%')} | {s['wall_s']:.0f} |")
  return "\n".join(lines)


def _plot_val(rows, path, config):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for opt, rs in rows.items():
    pts = [(r["step"], r["val_loss"]) for r in rs if "val_loss" in r]
    if pts:
      ax.plot(*zip(*pts), "o-", ms=3, label=opt)
  ax.set(xlabel="step", ylabel="validation loss (nats/token)",
         title=f"{config.preset}: {config.n_layer}×{config.d_model}, "
               f"context {config.context}")
  ax.legend()
  try:
    files.atomic_write(path, lambda f: fig.savefig(
        f, dpi=110, bbox_inches="tight", format="png"), "wb")
  finally:
    plt.close(fig)
  return path


def main(args: argparse.Namespace) -> int:
  from spectral_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import train as train_lib  # pylint: disable=g-import-not-at-top
  from spectral_jax.training import distributed  # pylint: disable=g-import-not-at-top
  try:
    cluster = distributed.cluster_from(
        getattr(args, "coordinator", None), getattr(args, "num_processes", None),
        getattr(args, "process_id", None))
  except ValueError as err:
    raise UsageError(str(err)) from None
  config = config_from_args(args)
  distributed.initialize(cluster)
  progress = not args.no_progress and distributed.is_primary()
  try:
    if args.compare:
      opts = [o.strip() for o in args.compare.split(",") if o.strip()]
      bad = [o for o in opts if o not in train_lib.OPTIMIZERS]
      if bad or not opts:
        raise UsageError(f"--compare {args.compare!r}: allowed optimizers are "
                         f"{', '.join(train_lib.OPTIMIZERS)}.")
      if len(set(opts)) != len(opts):
        raise UsageError(f"--compare {args.compare!r}: name each optimizer "
                         "once (every arm trains into out/<optimizer>).")
      ckpt_lib.check_writable(args.out)
      result = run_comparison(config, opts, args.out, progress=progress,
                              resume=args.resume)
      if distributed.is_primary():
        print(result["table"])
        print(f"wrote {pathlib.Path(args.out) / 'summary.md'}")
      return 0
    summary = train(config, args.out, resume=args.resume, progress=progress)
  except (ValueError, RuntimeError, ArithmeticError,
          ckpt_lib.CheckpointError) as err:
    raise UsageError(str(err)) from None
  keep = ("optimizer", "n_params", "final_val_loss", "final_train_loss",
          "tokens_per_s", "track_overhead", "wall_s")
  if distributed.is_primary():
    print(json.dumps({k: summary[k] for k in keep}, indent=1))
  return 0
