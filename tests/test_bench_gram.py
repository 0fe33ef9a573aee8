"""Smoke test of experiments/bench_gram.py at tiny sizes."""

import argparse
import json

import numpy as np

from experiments import bench_gram
from spectral_jax import linalg


def test_gram_restart_rows_and_report(tmp_path, monkeypatch):
  rows = bench_gram.gram_restart_rows(shapes=((16, 64),), steps=(5, 9),
                                      dtypes=("float32",), log=lambda _: None)
  assert [(r["steps"], r["restart_every"]) for r in rows] == [(5, 5), (9, 2)]
  for r in rows:
    for form, (gram_form, restart) in bench_gram.FORMS.items():
      cell = r[form]
      assert cell["flops"] == linalg.newton_schulz_flops(
          (16, 64), r["steps"], coeffs="polar_express", gram_form=gram_form,
          gram_restart=restart)
      # XLA counts the matmuls plus elementwise work: never fewer.
      assert cell["xla_flops"] >= cell["flops"]
      assert all(np.isfinite(e) for e in cell["err"].values())
    assert r["flop_ratio"] < 1  # 16×64 is wide: the Gram form is cheaper.
  table = bench_gram.render_markdown(rows)
  assert table.count("\n") == 1 + len(rows) and "16×64" in table
  # The CLI entry point, on the same tiny size.
  monkeypatch.setattr(bench_gram, "SHAPES", ((16, 64),))
  monkeypatch.setattr(bench_gram, "DTYPES", ("float32",))
  args = argparse.Namespace(quick=True, out=str(tmp_path), seed=1)
  assert bench_gram.main(args) == 0
  saved = json.loads((tmp_path / "bench_gram.json").read_text())
  assert [r["steps"] for r in saved["rows"]] == [5, 20]
  assert (tmp_path / "bench_gram.md").read_text().startswith("| shape")
