"""``spectral-jax bench``: speed and accuracy of polar factors and Muon.

One run measures, side by side (GitHub issue 7), one family per module:

1. ``pareto``: per matrix shape, every polar method (exact ``svd`` /
   ``eigh`` / ``qdwh`` / ``auto``, Newton–Schulz presets at 3–8 steps) →
   relative Frobenius error to the exact polar factor (NumPy float64 SVD) vs
   median ms of the jitted call.
2. ``forms``: direct vs Gram-form Newton–Schulz.
3. ``throughput``: achieved GFLOP/s of our orthogonalisation vs plain
   ``jnp.matmul`` of the same shapes.
4. ``muon``: ``spectral_jax.muon`` vs ``optax.contrib.muon`` with identical
   settings on a 6-layer width-256 transformer tree, per-layer and stacked
   leaves, and (unless ``--quick``) a GPT-2-small-shaped tree.
5. ``gpt_step``: ms per full training step of the default GPT with AdamW,
   Muon and SpecGD, and the cost of the diagnostics tracking function.

Writes ``DIR/bench.json`` and ``DIR/bench.md`` atomically and prints the
ratios. ``core`` holds what the families share (``BenchConfig``, timers,
references, markdown helpers), ``runner`` the registry ``FAMILIES`` and
``run``, ``cli`` the command line. To add a family: a module with
``measure``, ``markdown`` and ``summary`` (see ``runner``) and one line in
``runner.FAMILIES``.
"""

from experiments.bench.cli import add_arguments
from experiments.bench.cli import main
from experiments.bench.core import GPT2_SMALL_SHAPES
from experiments.bench.core import NS_PRESETS
from experiments.bench.core import SMALL_TREE_SHAPES
from experiments.bench.core import BenchConfig
from experiments.bench.core import machine_info
from experiments.bench.core import median_ms
from experiments.bench.core import paired_timings_ms
from experiments.bench.core import test_matrices
from experiments.bench.core import timings_ms
from experiments.bench.forms import form_rows
from experiments.bench.gpt_step import bench_gpt_train_step
from experiments.bench.gpt_step import gpt_step_markdown
from experiments.bench.muon import muon_rows
from experiments.bench.muon import muon_tree_flops
from experiments.bench.muon import transformer_tree
from experiments.bench.pareto import pareto_front
from experiments.bench.pareto import pareto_rows
from experiments.bench.runner import FAMILIES
from experiments.bench.runner import render_markdown
from experiments.bench.runner import run
from experiments.bench.runner import summary_lines
from experiments.bench.throughput import throughput_rows

__all__ = [
    "BenchConfig", "FAMILIES", "GPT2_SMALL_SHAPES", "NS_PRESETS",
    "SMALL_TREE_SHAPES", "add_arguments", "bench_gpt_train_step",
    "form_rows", "gpt_step_markdown", "machine_info", "main", "median_ms",
    "muon_rows", "muon_tree_flops", "paired_timings_ms", "pareto_front",
    "pareto_rows", "render_markdown", "run", "summary_lines",
    "test_matrices", "throughput_rows", "timings_ms", "transformer_tree",
]
