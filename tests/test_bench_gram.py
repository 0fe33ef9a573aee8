"""The Gram-restart bench family (experiments/bench/gram_restarts.py), tiny."""

import json

import numpy as np

from experiments import bench
from experiments.bench import gram_restarts
from spectral_jax import linalg


def test_gram_restart_rows_and_report():
  rows = gram_restarts.gram_restart_rows(
      ((16, 64),), (5, 9), np.random.default_rng(0), dtypes=("float32",),
      log=lambda _: None)
  assert [(r["steps"], r["restart_every"]) for r in rows] == [(5, 5), (9, 2)]
  for r in rows:
    for form, (gram_form, restart) in gram_restarts.FORMS.items():
      cell = r[form]
      assert cell["flops"] == linalg.newton_schulz_flops(
          (16, 64), r["steps"], coeffs="polar_express", gram_form=gram_form,
          gram_restart=restart)
      # XLA counts the matmuls plus elementwise work: never fewer.
      assert cell["xla_flops"] >= cell["flops"]
      assert all(np.isfinite(e) for e in cell["err"].values())
    assert r["flop_ratio"] < 1  # 16×64 is wide: the Gram form is cheaper.
  table = gram_restarts.render_table(rows)
  assert len(table) == 2 + len(rows) and "16×64" in table[2]


def test_bench_prints_the_gram_restart_table(tmp_path):
  cfg = bench.BenchConfig(
      reps=1, shapes=((12, 4),), steps=(3,),
      presets=(("jordan", "frobenius"),), exact=("svd",), layers=1,
      gpt_reps=0, gram_shapes=((16, 64),), gram_steps=(9,))
  res = bench.run(cfg, str(tmp_path), log=lambda _: None)
  saved = json.loads((tmp_path / "bench.json").read_text())
  assert [(r["steps"], r["dtype"]) for r in saved["gram_restarts"]] == [
      (9, "float32"), (9, "bfloat16")]
  md = (tmp_path / "bench.md").read_text()
  assert "Gram form with restarts" in md and "| 16×64 | bfloat16 | 9 |" in md
  assert sum("Gram restarts 16×64" in line
             for line in bench.summary_lines(res)) == 2
