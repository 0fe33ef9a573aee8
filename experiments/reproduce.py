"""``spectral-jax reproduce``: run the papers' experiments and write a report.

    spectral-jax reproduce [--quick | --full] [--only NAME ...] [--force]
                           [--jobs N] [--cifar10 DIR] --out DIR

Writes, for every experiment in ``experiments.registry.EXPERIMENT_MODULES``:
``DIR/NAME/metrics.jsonl`` (raw series), ``DIR/figures/NAME_*.png`` and the
completion marker ``DIR/NAME/complete.json`` (written last, atomically); then
``DIR/report.md`` and ``DIR/claims.json`` from every completed experiment.

A rerun skips an experiment whose marker exists for the same mode and data
(``--force`` redoes it); a run killed halfway has no marker, so it is redone.

``--jobs N`` runs up to N experiments at once, each in its own process
(longest first); every experiment is single-threaded numerics (below), so
on a 2-core machine two jobs use both cores where one left a core mostly
idle. Each experiment's numbers do not depend on N: its random streams are
its own and nothing is shared but the output folder.

The image experiments (paper 2's LR sweep, paper 3's ViT control) run on
scikit-learn's digits by default, offline. ``--cifar10 DIR`` (or the
environment variable ``SPECTRAL_JAX_CIFAR10``) points them at the standard
CIFAR-10 python-pickle batches (``data_batch_1`` … ``data_batch_5``,
``test_batch``): each such module defines ``cifar10_config(config, folder)``.
"""

from __future__ import annotations

import os


def _single_threaded_numerics() -> None:
  """One BLAS / XLA thread, set before jax or numpy start.

  The runs are many small fp64 factorisations (100×100 to 512×512). On a
  shared 2-core machine, multi-threaded LAPACK and XLA's thread pool spin
  against other processes: measured 100×100 SVD 1.3 ms single-threaded vs
  56 ms with default threading under load. A user's own settings win.

  XLA's intra-op pool is *not* cut to one thread: with
  ``intra_op_parallelism_threads=1`` (set here until 2026-12-02) the GPT
  one-step probe deadlocked every time (0 % CPU, all XLA workers idle),
  while ``--xla_cpu_multi_thread_eigen=false`` alone ran it in 13 s.
  """
  for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_multi_thread_eigen" not in flags:
    os.environ["XLA_FLAGS"] = (
        flags + " --xla_cpu_multi_thread_eigen=false").strip()


_single_threaded_numerics()

import argparse
import dataclasses
import importlib
import json
import platform
import time

from experiments import registry
from experiments import report
from experiments.cli import UsageError
from experiments.outdir import prepare_out_dir
from spectral_jax import files

MARKER = "complete.json"
CIFAR10_ENV = "SPECTRAL_JAX_CIFAR10"
MODES = ("quick", "full")
MAX_JOBS = 4
# Measured quick-mode wall times (s, 2 idle cores, 2026-12-04), used only to
# start the longest experiments first; a previous marker's time wins.
_QUICK_SECONDS = {"mlp_specgd": 337, "gpt_compare": 302, "dual_optimizer": 84,
                  "regime": 56, "rf_specgd": 42, "stable_rank_init": 39,
                  "nr_scaling": 31, "probe_advantage": 27}


def default_jobs() -> int:
  return max(1, min(os.cpu_count() or 1, MAX_JOBS))


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(
        f"expected a whole number >= 1, got {text!r}")
  return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="mode", action="store_const",
                    const="quick",
                    help="CPU-sized runs, about 12.5 min on 2 idle cores (default)")
  mode.add_argument("--full", dest="mode", action="store_const", const="full",
                    help="the paper's sizes (hours on CPU)")
  parser.set_defaults(mode="quick")
  parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                      help="run only these experiments (default: all)")
  parser.add_argument("--force", action="store_true",
                      help="redo experiments that are already complete")
  parser.add_argument("--jobs", type=_positive_int, default=default_jobs(),
                      metavar="N",
                      help="experiments run at once, one process each "
                           f"(default: the CPU count, at most {MAX_JOBS}: "
                           f"{default_jobs()} here)")
  parser.add_argument("--out", required=True, metavar="DIR",
                      help="output folder (created if missing)")
  parser.add_argument("--cifar10", metavar="DIR", default=None,
                      help="CIFAR-10 python batches for the image experiments "
                           f"(default: ${CIFAR10_ENV}, else the offline "
                           "digits set)")


def load_experiments() -> dict:
  """``{NAME: module}`` for every registered experiment, in report order."""
  mods = {}
  for name in registry.EXPERIMENT_MODULES:
    mod = importlib.import_module(name)
    mods[mod.NAME] = mod
  return mods


def _check_out_dir(out: str) -> str:
  return prepare_out_dir(out, "--out", subdirs=("figures",))


def _marker_path(out: str, name: str) -> str:
  return os.path.join(out, name, MARKER)


def _read_marker(out: str, name: str) -> dict | None:
  try:
    with open(_marker_path(out, name)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _check_cifar10(folder: str | None) -> str | None:
  """The CIFAR-10 folder (absolute), checked before any work; None: digits."""
  if not folder:
    return None
  from experiments.lib import image_data
  folder = os.path.abspath(folder)
  if not os.path.isdir(folder):
    raise UsageError(f"--cifar10 {folder!r} is not a directory")
  names = set(os.listdir(folder))
  if (image_data.CIFAR10_TEST not in names
      or not names & set(image_data.CIFAR10_TRAIN)):
    raise UsageError(
        f"--cifar10 {folder!r} lacks the CIFAR-10 python batches (needs "
        f"{image_data.CIFAR10_TEST} and at least one of "
        f"{', '.join(image_data.CIFAR10_TRAIN)})")
  return folder


def _data_for(mod, cifar10: str | None) -> str | None:
  """The data folder ``mod`` runs on: CIFAR-10 if given and it uses images."""
  return cifar10 if hasattr(mod, "cifar10_config") else None


def _config_for(mod, mode: str, cifar10: str | None = None):
  config = mod.Config.full() if mode == "full" else mod.Config()
  if _data_for(mod, cifar10):
    config = mod.cifar10_config(config, cifar10)
  return config


def run_one(mod, mode: str, out: str, cifar10: str | None = None) -> dict:
  """Runs one experiment and writes its marker; returns the marker's content."""
  exp_dir = os.path.join(out, mod.NAME)
  os.makedirs(exp_dir, exist_ok=True)
  # Drop a stale marker first: from here until the new one is written, the
  # folder counts as incomplete.
  if os.path.exists(_marker_path(out, mod.NAME)):
    os.unlink(_marker_path(out, mod.NAME))
  config = _config_for(mod, mode, cifar10)
  start = time.perf_counter()
  result = mod.run(config, exp_dir)
  seconds = time.perf_counter() - start
  figures = []
  for path in result.get("figures", []):
    # Named by the path inside the experiment's folder, so that figures of
    # the same name from different arms (e.g. muon/fig2.png, adamw/fig2.png)
    # stay apart.
    rel = os.path.relpath(path, exp_dir)
    base = (os.path.basename(path) if rel.startswith(os.pardir)
            else rel.replace(os.sep, "_"))
    base = base if base.startswith(mod.NAME) else f"{mod.NAME}_{base}"
    dest = os.path.join(out, "figures", base)
    with open(path, "rb") as f:
      files.atomic_write_bytes(dest, f.read())
    figures.append(os.path.join("figures", base))
  marker = {
      "name": mod.NAME,
      "title": mod.TITLE,
      "mode": mode,
      "data": _data_for(mod, cifar10),
      "config": dataclasses.asdict(config),
      "seconds": seconds,
      "summary": result.get("summary", ""),
      "figures": figures,
      "claims": result.get("claims", []),
      "metrics": result.get("metrics", {}),
  }
  report.atomic_write_json(_marker_path(out, mod.NAME), marker)
  return marker


def _announce(name: str, mode: str, data: str | None) -> None:
  print(f"[reproduce] {name}: running ({mode}"
        f"{', CIFAR-10' if data else ''}) ...", flush=True)


def _done(name: str, marker: dict) -> None:
  print(f"[reproduce] {name}: done in {marker['seconds']:.0f} s, "
        f"{report.headline(marker['claims'])}", flush=True)


def _run_in_worker(module: str, mode: str, out: str,
                   cifar10: str | None) -> dict:
  """One experiment in a worker process (spawned: no JAX state inherited)."""
  report.enable_x64()
  return run_one(importlib.import_module(module), mode, out, cifar10)


def _expected_seconds(name: str, mode: str, out: str) -> float:
  marker = _read_marker(out, name)
  if marker is not None and marker.get("mode") == mode:
    return float(marker.get("seconds", 0.0))
  return float(_QUICK_SECONDS.get(name, 0)) * (1 if mode == "quick" else 20)


def _run_parallel(todo, mods, mode, out, cifar10, jobs) -> None:
  """Runs ``todo`` on ``jobs`` worker processes, longest expected first.

  A failing experiment stops the queue: experiments not yet started are
  cancelled, running ones finish (their markers are written), and the error
  is raised here; the next run redoes only what has no marker.
  """
  import concurrent.futures as futures
  import multiprocessing
  order = sorted(todo, key=lambda n: -_expected_seconds(n, mode, out))
  context = multiprocessing.get_context("spawn")
  with futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
    print(f"[reproduce] running {', '.join(order)} ({mode}"
          f"{', CIFAR-10 where images are used' if cifar10 else ''}) on "
          f"{jobs} processes, longest first ...", flush=True)
    running = {pool.submit(_run_in_worker, mods[name].__name__, mode, out,
                           cifar10): name for name in order}
    try:
      for future in futures.as_completed(running):
        _done(running[future], future.result())
    except BaseException:
      pool.shutdown(wait=True, cancel_futures=True)
      raise


def main(args: argparse.Namespace) -> int:
  if args.mode not in MODES:
    raise UsageError(f"mode must be one of {MODES}, got {args.mode!r}")
  mods = load_experiments()
  selected = list(mods)
  if args.only:
    unknown = [n for n in args.only if n not in mods]
    if unknown:
      raise UsageError(f"unknown experiment(s) {', '.join(unknown)}; "
                       f"valid choices: {', '.join(mods)}")
    selected = [n for n in mods if n in args.only]
  cifar10 = _check_cifar10(args.cifar10 if args.cifar10 is not None
                           else os.environ.get(CIFAR10_ENV))
  out = _check_out_dir(args.out)
  report.enable_x64()

  # The library's run lock (as train-gpt): two runs on one --out would write
  # the same metrics, markers and report concurrently.
  from spectral_jax.training.checkpoint import RunLock
  lock = RunLock(out)
  try:
    lock.__enter__()
  except RuntimeError as err:
    raise UsageError(str(err)) from None
  try:
    return _run_locked(args, mods, selected, out, cifar10)
  finally:
    lock.__exit__(None, None, None)


def _run_locked(args, mods, selected, out, cifar10=None) -> int:
  """``main``'s work, with ``out`` locked."""
  import jax
  start = time.perf_counter()
  todo = []
  for name in selected:
    marker = _read_marker(out, name)
    data = _data_for(mods[name], cifar10)
    if (marker is not None and marker.get("mode") == args.mode
        and marker.get("data") == data and not args.force):
      print(f"[reproduce] {name}: complete ({args.mode}), skipped")
      continue
    todo.append(name)
  jobs = min(getattr(args, "jobs", 1), len(todo))
  if jobs <= 1:
    for name in todo:
      _announce(name, args.mode, _data_for(mods[name], cifar10))
      _done(name, run_one(mods[name], args.mode, out, cifar10))
  else:
    _run_parallel(todo, mods, args.mode, out, cifar10, jobs)

  # The report covers every completed experiment in the folder, so running
  # --only X adds X to an earlier report instead of replacing it.
  results = [m for m in (_read_marker(out, n) for n in mods) if m is not None]
  header = (
      f"Generated by `spectral-jax reproduce` on {platform.node()} "
      f"({platform.machine()}, {os.cpu_count()} CPU cores visible), "
      f"jax {jax.__version__}, backend {jax.default_backend()}, float64 on. "
      f"This invocation took {time.perf_counter() - start:.0f} s (1-minute load "
      f"average at the end: {os.getloadavg()[0]:.1f}); per-experiment "
      "wall times below are from the run that produced each section. "
      "Random streams differ from the authors' PyTorch code, so curves match "
      "the paper in shape and range, not point by point.")
  header += (f" Sum of the per-experiment wall times in this report: "
             f"{sum(r.get('seconds', 0) for r in results):.0f} s.")
  path, _ = report.write_report(out, results, header=header)
  print(f"[reproduce] wrote {path} ({time.perf_counter() - start:.0f} s)")
  return 0
