"""Experiments at tiny sizes, and the ``spectral-jax reproduce`` command.

Each experiment runs in seconds here; the tests check the result contract
(claims, figures, metrics.jsonl) and the direction of a claim where it is
robust at that size. The full quick reproduction is a slow test.
"""

import dataclasses
import json
import os
import pickle
import sys
import types

import numpy as np
import pytest

from spectral_jax import files
from experiments import cli
from experiments import gpt_compare
from experiments import lambda_toy
from experiments import mlp_specgd
from experiments import nr_scaling
from experiments import registry
from experiments import report
from experiments import reproduce
from experiments import rf_specgd
from experiments import stable_rank_init

CLAIM_KEYS = {"id", "experiment", "claim", "paper", "measured", "holds", "rule",
              "status", "reason"}


def _check_result(mod, result, out_dir):
  assert set(result) >= {"claims", "figures", "summary", "metrics"}
  assert result["claims"], "every experiment states claims"
  for c in result["claims"]:
    assert set(c) == CLAIM_KEYS
    assert c["experiment"] == mod.NAME
    assert c["holds"] in (True, False, None)
    assert c["status"] in report.STATUSES
  for f in result["figures"]:
    with open(f, "rb") as fh:
      assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
  rows = report.read_jsonl(os.path.join(out_dir, "metrics.jsonl"))
  assert rows
  json.dumps(report.to_jsonable(result["metrics"]))  # JSON-able
  return {c["id"]: c for c in result["claims"]}, rows


def test_registry_modules_follow_the_contract():
  for name in registry.EXPERIMENT_MODULES:
    mod = __import__(name, fromlist=["run"])
    assert isinstance(mod.NAME, str) and isinstance(mod.TITLE, str)
    assert dataclasses.is_dataclass(mod.Config)
    assert mod.Config.__dataclass_params__.frozen
    assert isinstance(mod.Config.full(), mod.Config)
    assert callable(mod.run)


@pytest.mark.heavy
def test_rf_specgd_tiny(tmp_path):
  cfg = rf_specgd.Config(k=40, d=20, n=160, relu_steps=60, swiglu_steps=30,
                         restart_every=20, seeds=(0,))
  result = rf_specgd.run(cfg, str(tmp_path))
  claims, rows = _check_result(rf_specgd, result, tmp_path)
  # The §1.2 one-step guarantees are exact identities: hold at any size.
  assert claims["C3"]["holds"] is True
  # SpecGD below GD on RF-ReLU after 50 steps (the paper's main claim).
  loss = {(r["method"], r["step"]): r["loss"] for r in rows
          if r["features"] == "relu"}
  assert loss["specgd", 50] < loss["gd", 50]
  # Restarts from t = 20 and 40 and the nr peak.
  methods = {r["method"] for r in rows}
  assert {"specgd_from_20", "specgd_from_40", "specgd_from_peak"} <= methods


def test_rf_specgd_rejects_newton_schulz(tmp_path):
  with pytest.raises(ValueError, match="polar_method"):
    rf_specgd.run(rf_specgd.Config(polar_method="newton_schulz", seeds=(0,),
                                   relu_steps=2, swiglu_steps=2), str(tmp_path))


def test_lambda_toy_tiny(tmp_path):
  cfg = lambda_toy.Config(dim=12, lambdas=(0.0, 0.3), steps=60)
  result = lambda_toy.run(cfg, str(tmp_path))
  _check_result(lambda_toy, result, tmp_path)
  m = result["metrics"]
  # A = I: GD's step n/‖A‖_op² = 1/L_F solves the quadratic in one step.
  assert m["iters_gd"][0] == 1
  # The mean spike lowers st(A) and helps SpecGD relative to GD.
  assert m["st"][1] < m["st"][0]
  assert m["speedup"][1] > m["speedup"][0]


@pytest.mark.heavy
def test_nr_scaling_tiny(tmp_path):
  cfg = nr_scaling.Config(ks=(24, 48), steps=8, seeds=(0,),
                          spiked_dims=(30, 60), spiked_seeds=(0,))
  result = nr_scaling.run(cfg, str(tmp_path))
  claims, rows = _check_result(nr_scaling, result, tmp_path)
  table = result["metrics"]["table"]
  for model in nr_scaling.MODELS:
    for k in ("24", "48"):
      # One GD step raises the gradient nuclear rank well above its init value.
      assert table[model][k]["nr1"] > 1.5 * table[model][k]["nr0"]
    assert table[model]["48"]["nr1"] > table[model]["24"]["nr1"]
  sp = result["metrics"]["spiked"]
  assert sp["60"][1] > sp["30"][1] > 3 * sp["30"][0]


@pytest.mark.heavy
def test_stable_rank_init_tiny(tmp_path):
  cfg = stable_rank_init.Config(d0=32, n=256, widths=(32, 64), depth_width=32,
                                depth=3, n_tokens=300, embed_dims=(32,),
                                block_dims=(16, 32), block_tokens=64)
  result = stable_rank_init.run(cfg, str(tmp_path))
  claims, _ = _check_result(stable_rank_init, result, tmp_path)
  assert claims["C9a"]["holds"] is True       # st(one-hot) = 1/p_max exactly
  width = result["metrics"]["width"]
  # Centred / gated activations have far larger stable rank than ReLU.
  assert min(width["swiglu"]) > 2 * max(width["relu"])
  assert max(width["relu"]) < 4.0


@pytest.mark.heavy
def test_mlp_specgd_tiny(tmp_path):
  cfg = mlp_specgd.Config(d=8, hidden=16, n=32, steps=6, swiglu_n_small=32,
                          swiglu_n_large=64, swiglu_steps_small=4,
                          swiglu_steps_large=4, swiglu_lr_specgd_small=(0.01,),
                          swiglu_init_ns=(16, 32), log_every=2)
  result = mlp_specgd.run(cfg, str(tmp_path))
  _, rows = _check_result(mlp_specgd, result, tmp_path)
  e4 = [r for r in rows if r.get("part") == "E4"]
  assert len(e4) == 2 * cfg.steps
  assert all(np.isfinite(r["loss"]) for r in e4)
  # nr is logged every log_every steps only.
  assert sum("nr_G1" in r for r in e4) == 2 * len(range(0, cfg.steps, 2))


@pytest.mark.slow  # ~60 s (three arms compiled); train-gpt itself is in test_train
def test_gpt_compare_tiny(tmp_path):
  cfg = gpt_compare.Config(n_layer=1, n_head=2, d_model=16, context=16,
                           batch_size=4, steps=4, track_every=2, eval_every=2,
                           val_batches=1)
  result = gpt_compare.run(cfg, tmp_path)
  claims, rows = _check_result(gpt_compare, result, tmp_path)
  assert {"C27a", "C27c", "C28a", "C28b", "C28c"} <= set(claims)
  assert {r["optimizer"] for r in rows} == {"adamw", "muon", "specgd"}
  # One MLP figure pair per arm, each arm's in its own file.
  figures = result["figures"]
  assert len(figures) == len(set(figures)) == 1 + 2 * 3
  for opt in cfg.optimizers:
    assert sum(f"{os.sep}{opt}{os.sep}" in f for f in figures) == 2
  assert set(result["metrics"]) == {"adamw", "muon", "specgd"}


def test_mlp_step_matches_paper_rule():
  """One GD step equals W − lr·n/‖A‖_op²·G per layer (NumPy reference)."""
  import jax
  import jax.numpy as jnp
  cfg = mlp_specgd.Config(d=6, hidden=10, n=20, log_every=1)
  kd, km = jax.random.split(jax.random.key(cfg.seed))
  x, y = mlp_specgd.make_data(kd, cfg.d, cfg.n)
  gdef, tdef, kernels = mlp_specgd.make_model(km, cfg.d, cfg.hidden, "relu2")
  _, grads, acts = mlp_specgd.layer_stats(gdef, tdef, kernels, x, y)
  step = mlp_specgd._make_step(gdef, tdef, (), "eigh", 1)
  (new, *_), _ = step((kernels, x, y, jnp.float64(0.05), jnp.int32(0)))
  for w, g, a, w_new in zip(kernels, grads, acts, new):
    op2 = np.linalg.norm(np.asarray(a), 2) ** 2
    np.testing.assert_allclose(w_new, np.asarray(w) - 0.05 * cfg.n / op2
                               * np.asarray(g), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------
# report helpers
# --------------------------------------------------------------------------
def test_atomic_writes_leave_no_temp_files(tmp_path):
  report.write_jsonl(tmp_path / "m.jsonl", [{"a": np.float64(1.5)},
                                            {"b": float("nan")}])
  assert report.read_jsonl(tmp_path / "m.jsonl") == [{"a": 1.5}, {"b": None}]
  with pytest.raises(RuntimeError):
    files.atomic_write(tmp_path / "x.txt", lambda f: (_ for _ in ()).throw(
        RuntimeError("boom")), "w")
  assert sorted(os.listdir(tmp_path)) == ["m.jsonl"]


def test_claim_builder_and_table():
  c = report.claim("X1", "e", "a | b", "p", 0.000123, False, "rule")
  assert c["measured"] == "1.23e-04" and c["holds"] is False
  table = report.claims_table([c])
  assert "does not hold" in table and "a \\| b" in table
  assert c["status"] == report.DOES_NOT_HOLD


def test_claim_statuses_and_headline():
  rows = [report.claim("A", "e", "c", "p", 1, True),
          report.claim("B", "e", "c", "p", 1, False),
          report.claim("C", "e", "c", "p", 1, False,
                       status=report.SUBSTITUTE, reason="digits"),
          report.claim("D", "e", "c", "p", 1, True, status=report.FINDING),
          report.claim("E", "e", "c", "p", 1, None)]
  assert report.headline(rows) == ("1 hold, 1 do not, 1 not reproduced on "
                                   "substitute data, 1 findings, 1 not checked")
  assert report.headline(rows[:4]).endswith("1 findings")
  table = report.claims_table(rows)
  assert "**not reproduced on substitute data**: digits" in table
  assert "**finding** (observed)" in table
  with pytest.raises(ValueError, match="reason"):
    report.claim("C", "e", "c", "p", 1, False, status=report.SUBSTITUTE)
  with pytest.raises(ValueError, match="contradicts"):
    report.claim("A", "e", "c", "p", 1, False, status=report.HOLDS)
  with pytest.raises(ValueError, match="status must be"):
    report.claim("A", "e", "c", "p", 1, True, status="maybe")


# --------------------------------------------------------------------------
# reproduce command
# --------------------------------------------------------------------------
def test_reproduce_rejects_unknown_names(tmp_path, capsys):
  rc = cli.main(["reproduce", "--only", "nope", "--out", str(tmp_path)])
  err = capsys.readouterr().err.strip()
  assert rc == 2
  assert len(err.splitlines()) == 1
  assert "nope" in err and "rf_specgd" in err


def test_reproduce_rejects_bad_options(tmp_path, capsys):
  with pytest.raises(SystemExit) as exc:
    cli.main(["reproduce", "--quick", "--full", "--out", str(tmp_path)])
  assert exc.value.code == 2
  blocker = tmp_path / "file"
  blocker.write_text("x")
  rc = cli.main(["reproduce", "--out", str(blocker / "sub")])
  assert rc == 2
  assert "--out" in capsys.readouterr().err


@pytest.fixture
def fake_experiment(monkeypatch):
  """A registered one-claim experiment that counts its runs."""
  mod = types.ModuleType("experiments._fake_exp")
  mod.NAME, mod.TITLE, mod.calls, mod.fail = "fake", "Fake", [], False

  @dataclasses.dataclass(frozen=True)
  class Config:
    size: int = 1

    @classmethod
    def full(cls):
      return cls(size=2)

  def run(config, out_dir):
    mod.calls.append(config.size)
    report.write_jsonl(os.path.join(out_dir, "metrics.jsonl"), [{"t": 0}])
    if mod.fail:
      raise KeyboardInterrupt  # a run killed halfway
    fig, (ax,) = report.subplots()
    ax.plot([1, 2])
    path = report.save_figure(fig, os.path.join(out_dir, "f.png"))
    # A second arm's figure of the same file name must not overwrite it.
    os.makedirs(os.path.join(out_dir, "arm"), exist_ok=True)
    fig, (ax,) = report.subplots()
    ax.plot([2, 1])
    arm = report.save_figure(fig, os.path.join(out_dir, "arm", "f.png"))
    return {"claims": [report.claim("F1", "fake", "c", "p", 1.0, True)],
            "figures": [path, arm], "summary": "s", "metrics": {"x": 1}}

  mod.Config, mod.run = Config, run
  monkeypatch.setitem(sys.modules, "experiments._fake_exp", mod)
  monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ["experiments._fake_exp"])
  return mod


def test_reproduce_skips_complete_and_force_redoes(tmp_path, fake_experiment):
  out = str(tmp_path / "out")
  assert cli.main(["reproduce", "--out", out]) == 0
  assert fake_experiment.calls == [1]
  assert cli.main(["reproduce", "--out", out]) == 0
  assert fake_experiment.calls == [1]                 # skipped
  assert cli.main(["reproduce", "--out", out, "--force"]) == 0
  assert fake_experiment.calls == [1, 1]
  assert cli.main(["reproduce", "--full", "--out", out]) == 0
  assert fake_experiment.calls == [1, 1, 2]           # other mode: redone
  claims = json.load(open(os.path.join(out, "claims.json")))
  assert claims == [{"id": "F1", "experiment": "fake", "claim": "c",
                     "paper": "p", "measured": "1", "holds": True,
                     "rule": "", "status": "holds", "reason": ""}]
  text = open(os.path.join(out, "report.md")).read()
  assert "figures/fake_f.png" in text and "**holds**" in text
  assert os.path.exists(os.path.join(out, "figures", "fake_f.png"))
  assert "figures/fake_arm_f.png" in text
  assert os.path.exists(os.path.join(out, "figures", "fake_arm_f.png"))


def test_reproduce_killed_run_is_redone(tmp_path, fake_experiment):
  out = str(tmp_path / "out")
  assert cli.main(["reproduce", "--out", out]) == 0
  fake_experiment.fail = True
  assert cli.main(["reproduce", "--out", out, "--force"]) == 130
  # The old marker was dropped before the rerun started: nothing to trust.
  assert not os.path.exists(os.path.join(out, "fake", reproduce.MARKER))
  fake_experiment.fail = False
  assert cli.main(["reproduce", "--out", out]) == 0
  assert fake_experiment.calls == [1, 1, 1]


_FAKE_MODULE = """
import dataclasses, os
from experiments import report
NAME, TITLE = {name!r}, {name!r}

@dataclasses.dataclass(frozen=True)
class Config:
  size: int = 1

  @classmethod
  def full(cls):
    return cls(size=2)

def run(config, out_dir):
  if os.environ.get("FAKE_EXPERIMENT_FAIL") == NAME:
    raise ValueError("boom in " + NAME)
  report.write_jsonl(os.path.join(out_dir, "metrics.jsonl"), [{{"t": 0}}])
  return {{"claims": [report.claim(NAME, NAME, "c", "p", 1.0, True)],
          "metrics": {{"pid": os.getpid(), "size": config.size}}}}
"""


def _fake_modules(tmp_path, monkeypatch, names):
  """Importable experiment modules (a spawned worker must import them)."""
  for name in names:
    (tmp_path / f"{name}.py").write_text(_FAKE_MODULE.format(name=name))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(registry, "EXPERIMENT_MODULES", list(names))


def test_reproduce_jobs_run_experiments_in_worker_processes(tmp_path,
                                                           monkeypatch):
  _fake_modules(tmp_path, monkeypatch, ["fake_a", "fake_b", "fake_c"])
  out = str(tmp_path / "out")
  assert cli.main(["reproduce", "--jobs", "2", "--out", out]) == 0
  markers = [json.load(open(os.path.join(out, n, reproduce.MARKER)))
             for n in ("fake_a", "fake_b", "fake_c")]
  pids = {m["metrics"]["pid"] for m in markers}
  assert os.getpid() not in pids and 1 <= len(pids) <= 2
  assert [m["metrics"]["size"] for m in markers] == [1, 1, 1]
  claims = json.load(open(os.path.join(out, "claims.json")))
  assert [c["id"] for c in claims] == ["fake_a", "fake_b", "fake_c"]


def test_reproduce_jobs_failure_keeps_finished_markers(tmp_path, monkeypatch,
                                                       capsys):
  _fake_modules(tmp_path, monkeypatch, ["fake_ok", "fake_bad"])
  monkeypatch.setenv("FAKE_EXPERIMENT_FAIL", "fake_bad")
  out = str(tmp_path / "out")
  with pytest.raises(ValueError, match="boom in fake_bad"):
    cli.main(["reproduce", "--jobs", "2", "--out", out])
  assert not os.path.exists(os.path.join(out, "fake_bad", reproduce.MARKER))
  # The other job either finished (marker written) or was cancelled before it
  # started; a rerun without the failure completes whatever is missing.
  monkeypatch.delenv("FAKE_EXPERIMENT_FAIL")
  assert cli.main(["reproduce", "--jobs", "2", "--out", out]) == 0
  for name in ("fake_ok", "fake_bad"):
    assert os.path.exists(os.path.join(out, name, reproduce.MARKER))


def test_reproduce_jobs_must_be_positive(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(["reproduce", "--jobs", "0", "--out", str(tmp_path)])
  assert exit_.value.code == 2
  assert "--jobs: expected a whole number >= 1, got '0'" in (
      capsys.readouterr().err)


@pytest.mark.slow
def test_quick_reproduction(tmp_path):
  out = str(tmp_path / "repro")
  assert cli.main(["reproduce", "--quick", "--out", out]) == 0
  claims = json.load(open(os.path.join(out, "claims.json")))
  names = {reproduce.load_experiments()[n].NAME
           for n in reproduce.load_experiments()}
  assert {c["experiment"] for c in claims} == names
  assert os.path.getsize(os.path.join(out, "report.md")) > 1000


def test_probe_realized_step_agreement_is_a_finding():
  from experiments import probe_advantage
  rows = [{"model": "E1 RF-ReLU", "paper_agrees": True, "best_agrees": False,
           "line_search_agrees": True}]
  claims = {c["id"]: c for c in probe_advantage._claims(
      rows, ["E1 RF-ReLU"], ("paper", "best", "line_search"))}
  assert claims["P10-E1-paper"]["status"] == report.HOLDS
  assert claims["P10-E1-best"]["status"] == report.FINDING
  assert claims["P10-E1-best"]["holds"] is False
  assert claims["P10-E1-line_search"]["status"] == report.FINDING


def _write_fake_cifar(folder, n=6):
  rng = np.random.default_rng(0)
  os.makedirs(folder)
  for name in ("data_batch_1", "test_batch"):
    with open(os.path.join(folder, name), "wb") as f:
      pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                   b"labels": rng.integers(0, 10, n).tolist()}, f)


def test_reproduce_cifar10_flag_and_env(tmp_path, fake_experiment,
                                        monkeypatch):
  from experiments.lib import image_data
  seen = []
  fake_experiment.cifar10_config = lambda config, folder: (
      seen.append(image_data.load_images(folder)) or config)
  folder = str(tmp_path / "cifar")
  _write_fake_cifar(folder)
  out = str(tmp_path / "out")
  assert cli.main(["reproduce", "--out", out, "--cifar10", folder]) == 0
  assert fake_experiment.calls == [1] and seen[0].name == "cifar10"
  assert seen[0].x_train.shape == (6, 32, 32, 3)
  marker = json.load(open(os.path.join(out, "fake", "complete.json")))
  assert marker["data"] == folder
  assert cli.main(["reproduce", "--out", out]) == 0     # digits now: redone
  assert fake_experiment.calls == [1, 1] and len(seen) == 1
  monkeypatch.setenv(reproduce.CIFAR10_ENV, folder)
  assert cli.main(["reproduce", "--out", out]) == 0     # CIFAR via env
  assert fake_experiment.calls == [1, 1, 1] and len(seen) == 2
  # A folder without the batches is refused before any work.
  os.unlink(os.path.join(folder, "test_batch"))
  assert cli.main(["reproduce", "--out", out, "--force"]) == 2
  assert cli.main(["reproduce", "--out", out, "--cifar10",
                   str(tmp_path / "nope")]) == 2
  assert fake_experiment.calls == [1, 1, 1]


def test_image_experiments_have_a_cifar10_config():
  from experiments import dual_optimizer, regime
  d = dual_optimizer.cifar10_config(dual_optimizer.Config(), "/c")
  r = regime.cifar10_config(regime.Config(), "/c")
  assert d.data == "/c" and r.data == "/c" and r.patch_size == 4


def test_reproduce_refuses_existing_file_out_before_work(tmp_path,
                                                         fake_experiment):
  target = tmp_path / "out.txt"
  target.write_text("x")
  assert cli.main(["reproduce", "--out", str(target)]) == 2
  assert fake_experiment.calls == [] and target.read_text() == "x"
