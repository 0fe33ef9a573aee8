"""The ``spectral-jax`` command line.

Subcommands are registered in ``_SUBCOMMANDS`` as ``name -> (module, help)``.
Each module defines ``add_arguments(parser)`` and ``main(args) -> int``; it is
imported only when its subcommand runs, so ``spectral-jax --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Defined in its own module so that `python -m experiments.cli` (where this
# module is __main__) and subcommands share one class.
from experiments.errors import UsageError

_SUBCOMMANDS = {
    "reproduce": ("experiments.reproduce",
                  "run the papers' experiments and write report.md"),
    "bench": ("experiments.bench",
              "benchmark polar methods and Muon against optax and matmul"),
    "train-gpt": ("experiments.train_gpt",
                  "train the NanoGPT-style model with AdamW / Muon / SpecGD"),
}


class _Parser(argparse.ArgumentParser):
  """argparse that reports bad input in one line with exit code 2."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")



def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="spectral-jax", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                              parser_class=_Parser)
  sub.required = True
  for name, (module, help_) in _SUBCOMMANDS.items():
    p = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(_module=module)
    # Arguments are added lazily below, only for the chosen subcommand.
  return parser


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = build_parser()
  # Find the subcommand first so that only its module is imported.
  command = next((a for a in argv if a in _SUBCOMMANDS), None)
  if command is not None:
    module = importlib.import_module(_SUBCOMMANDS[command][0])
    subparsers = next(a for a in parser._actions
                      if isinstance(a, argparse._SubParsersAction))
    module.add_arguments(subparsers.choices[command])
  args = parser.parse_args(argv)
  module = importlib.import_module(args._module)
  try:
    return int(module.main(args) or 0)
  except UsageError as err:
    print(f"spectral-jax {args.command}: error: {err}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  except OSError as err:
    # A full disk or a vanished folder mid-run: one line, not a traceback.
    # Writes are atomic, so what was written before stays whole.
    where = f" ({err.filename})" if err.filename else ""
    print(f"spectral-jax {args.command}: error: {err.strerror or err}{where};"
          " free the space or fix the folder, then rerun (train-gpt: with "
          "--resume; reproduce: the same command continues).", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
