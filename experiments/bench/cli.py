"""``spectral-jax bench``'s arguments and entry point."""

from __future__ import annotations

import argparse
import dataclasses
import os

from experiments.bench import core


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
                      "per-device FLOPs, collectives, temp memory vs optax)")


def main(args) -> int:
  # pylint: disable=g-import-not-at-top
  from experiments import bench  # run/summary_lines as the package exports them
  from experiments.cli import UsageError
  from experiments.outdir import prepare_out_dir
  # pylint: enable=g-import-not-at-top
  cfg = core.BenchConfig.quick() if args.quick else core.BenchConfig.full()
  if args.reps is not None:
    if args.reps < 1:
      raise UsageError(f"--reps must be >= 1, got {args.reps}")
    cfg = dataclasses.replace(cfg, reps=args.reps)
  cfg = dataclasses.replace(cfg, seed=args.seed)
  # Checked before any benchmarking: a bad --out must not cost the run.
  out = prepare_out_dir(args.out)
  if getattr(args, "mesh", None):
    from experiments.bench import mesh  # pylint: disable=g-import-not-at-top
    try:
      return mesh.main_mesh(args.mesh, out, width=256 if args.quick else 768)
    except ValueError as err:
      raise UsageError(str(err)) from None
  res = bench.run(cfg, out, args)
  for line in bench.summary_lines(res):
    print(line)
  print(f"wrote {os.path.join(out, 'bench.md')}")
  return 0
