"""The benchmark registry and the run that goes through it.

``FAMILIES`` lists the benchmark families in the order they run (they share
one random stream, so the order fixes every family's inputs), appear in
bench.md and print their summary lines. A family is a module with

* ``measure(cfg, rng, log) -> dict``: runs its measurements and returns the
  entries it adds to ``bench.json`` (top-level keys of its own);
* ``markdown(res) -> list[str]``: its bench.md section (ending in ``""``),
  read from the whole results dict;
* ``summary(res) -> list[str]``: the lines printed after the run (may be
  empty).

Adding a family is one module with those three functions and one line in
``FAMILIES``; what it shares (``BenchConfig``, timers, references, table
helpers) it takes from ``experiments.bench.core``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import numpy as np

from experiments.bench import core
from experiments.bench import forms
from experiments.bench import gpt_step
from experiments.bench import gram_restarts
from experiments.bench import muon
from experiments.bench import pareto
from experiments.bench import throughput
from spectral_jax import files

FAMILIES = (
    pareto,
    forms,
    throughput,
    muon,
    gpt_step,
    gram_restarts,
)


def render_markdown(res: dict[str, Any]) -> str:
  """bench.md from the results dict."""
  out = core.header_markdown(res)
  for family in FAMILIES:
    out += family.markdown(res)
  return "\n".join(out)


def summary_lines(res: dict[str, Any]) -> list[str]:
  return [line for family in FAMILIES for line in family.summary(res)]


def run(cfg: core.BenchConfig, out_dir: str, args=None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Run every family on ``cfg``; write bench.json / bench.md atomically."""
  del args  # Kept for callers that pass the parsed command line.
  rng = np.random.default_rng(cfg.seed)
  res: dict[str, Any] = {"machine": core.machine_info(),
                         "config": dataclasses.asdict(cfg)}
  for family in FAMILIES:
    res.update(family.measure(cfg, rng, log))
  res["loadavg_end"] = list(os.getloadavg())
  files.atomic_write_text(os.path.join(out_dir, "bench.json"),
                          json.dumps(res, indent=1, default=str))
  files.atomic_write_text(os.path.join(out_dir, "bench.md"),
                          render_markdown(res))
  return res
