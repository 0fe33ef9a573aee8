"""Smoke test of experiments/bench.py at tiny sizes: structure, not speed."""

import argparse
import json

import numpy as np
import pytest

from experiments import bench
from experiments.cli import UsageError


def test_bench_run_writes_reports(tmp_path):
  cfg = bench.BenchConfig(
      reps=1, shapes=((12, 4),), steps=(3, 5),
      presets=(("jordan", "frobenius"), ("polar_express", "schatten8")),
      exact=("svd", "auto"), layers=2, gpt_reps=0, gram_shapes=())
  res = bench.run(cfg, str(tmp_path), log=lambda _: None)
  saved = json.loads((tmp_path / "bench.json").read_text())
  md = (tmp_path / "bench.md").read_text()
  assert set(saved["pareto"]) == {"12x4"}
  rows = saved["pareto"]["12x4"]
  assert len(rows) == 2 + 2 * 2  # exact methods + presets × steps.
  for r in rows:
    assert r["ms"] > 0 and set(r["err"]) == {"gaussian", "logspace"}
  exact = [r for r in rows if r["method"] == "svd"][0]
  assert exact["err"]["gaussian"] < 1e-5  # The exact method is exact.
  assert {r["layout"] for r in saved["muon"]} == {"per_layer", "stacked"}
  for r in saved["muon"]:
    # Same settings as optax: the updates agree to float32 rounding.
    assert r["max_rel_diff"] < 1e-4
    assert r["ratio"] == pytest.approx(r["ours_ms"] / r["optax_ms"])
  assert len(saved["throughput"]) == 1 and saved["gpt_train_step"] is None
  assert len(saved["forms"]) == 4  # {jordan, polar_express} × {direct, gram}.
  assert saved["machine"]["nproc"] >= 1
  for section in ("Pareto", "throughput", "optax.contrib.muon", "GPT"):
    assert section in md
  assert bench.summary_lines(res)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# A GPT small enough that compiling three train steps and the track fn stays
# a few seconds.
_TINY_GPT = dict(n_layer=1, n_head=2, d_model=16, context=8, batch_size=2,
                 mlp_ratio=2)


@pytest.mark.slow  # Compiles three GPT train steps: 20–50 s on 2 cores.
def test_bench_gpt_train_step_structure():
  res = bench.bench_gpt_train_step(reps=2, vocab_size=32, **_TINY_GPT)
  for name in ("adamw", "muon", "specgd", "track"):
    assert 0 < res[f"{name}_min_ms"] <= res[f"{name}_ms"]
  assert res["muon_over_adamw"] == pytest.approx(
      res["muon_ms"] / res["adamw_ms"])
  assert res["specgd_over_adamw_min"] == pytest.approx(
      res["specgd_min_ms"] / res["adamw_min_ms"])
  assert res["target_met"] == (res["muon_over_adamw"] <= 1.15)
  # The default optimizer (muon) is the plain step tracking is compared to.
  assert res["track_over_step"] == pytest.approx(
      res["track_ms"] / res["muon_ms"])
  assert res["track_overhead_amortised"] == pytest.approx(
      res["track_over_step"] / res["track_every"])
  assert res["n_params"] > 0 and res["n_layer"] == 1 and res["batch_tokens"] == 2 * 8
  md = "\n".join(bench.gpt_step_markdown(res))
  for word in ("adamw", "muon", "specgd", "Tracking", "Target"):
    assert word in md
  json.dumps(res)  # bench.json must be able to hold it.


def test_pareto_front_is_non_dominated():
  rows = [{"ms": t, "err": {"gaussian": e}}
          for t, e in [(1, 0.5), (2, 0.1), (3, 0.2), (0.5, 0.9), (2, 0.05)]]
  front = bench.pareto_front(rows)
  assert [(r["ms"], r["err"]["gaussian"]) for r in front] == [
      (0.5, 0.9), (1, 0.5), (2, 0.05)]


def test_test_matrices_spectra():
  mats = bench.test_matrices((6, 9), np.random.default_rng(0))
  s = np.linalg.svd(mats["logspace"].astype(np.float64), compute_uv=False)
  np.testing.assert_allclose(s, np.logspace(0, -3, 6), rtol=1e-5)
  assert mats["gaussian"].dtype == np.float32


def test_muon_tree_flops_matches_issue_figure():
  # Issue 7: the 6-layer width-256 tree's Newton–Schulz work is ≈ 28 GFLOP.
  assert bench.muon_tree_flops(bench.SMALL_TREE_SHAPES, 6) / 1e9 == (
      pytest.approx(28.2, abs=0.1))


def test_main_rejects_bad_reps(tmp_path):
  args = argparse.Namespace(quick=True, out=str(tmp_path), reps=0, seed=0)
  with pytest.raises(UsageError, match="--reps"):
    bench.main(args)


def test_cli_rejects_bad_reps_in_one_line(capsys):
  from experiments import cli  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as exc:
    cli.main(["bench", "--quick", "--out", "unused", "--reps", "0"])
  assert exc.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "--reps" in err and len(err.splitlines()) == 1


def test_bench_gpt_train_step_rejects_bad_reps():
  with pytest.raises(ValueError, match="reps"):
    bench.bench_gpt_train_step(reps=0)


def test_gpt_step_markdown_without_tracking_and_skipped():
  r = {"preset": "cpu-small", "overrides": {}, "n_layer": 4, "d_model": 128,
       "n_params": 10, "batch_tokens": 2048, "reps": 2, "adamw_ms": 2.0,
       "adamw_min_ms": 1.0, "muon_ms": 3.0, "muon_min_ms": 1.0,
       "specgd_ms": 4.0, "specgd_min_ms": 2.0, "muon_over_adamw": 1.5,
       "muon_over_adamw_min": 1.0, "specgd_over_adamw": 2.0,
       "specgd_over_adamw_min": 2.0, "target_muon_over_adamw": 1.15,
       "target_met": False}
  md = "\n".join(bench.gpt_step_markdown(r))
  assert "not met" in md and "Tracking not timed" in md
  assert "| muon | 3.0 | 1.0 | 1.50 | 1.00 |" in md
  assert "skipped" in "\n".join(bench.gpt_step_markdown(None))


def test_cli_refuses_existing_file_out_before_benchmarking(tmp_path, capsys,
                                                          monkeypatch):
  from experiments import cli  # pylint: disable=g-import-not-at-top
  ran = []
  monkeypatch.setattr(bench, "run", lambda *a, **k: ran.append(1))
  target = tmp_path / "results.txt"
  target.write_text("keep me")
  assert cli.main(["bench", "--quick", "--out", str(target)]) == 2
  err = capsys.readouterr().err.strip()
  assert "--out" in err and "not a directory" in err
  assert len(err.splitlines()) == 1
  assert ran == [] and target.read_text() == "keep me"
