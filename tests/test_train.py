"""Tests for spectral_jax.training.train: schedules, optimizers, loop, resume."""

import dataclasses
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import labels as labels_lib
from spectral_jax.training import checkpoint as C
from spectral_jax.training import data as D

T = importlib.import_module("spectral_jax.training.train")


def _tiny(**kw):
  base = dict(n_layer=2, n_head=2, d_model=16, context=16, batch_size=4,
              steps=8, log_every=2, eval_every=4, val_batches=1,
              track_every=4, warmup_steps=2, momentum_warmup_steps=4)
  base.update(kw)
  return T.preset("cpu-small", **base)


@pytest.fixture(scope="module")
def tiny_data():
  # A repetitive text the model can learn quickly; a fixed string, so every
  # arm and every run sees the same tokens.
  text = ("def f(x):\n    return x * 2 + 1\n" * 40).encode()
  arr = np.frombuffer(text, np.uint8)
  return D.TokenData("tiny", 256, (arr[:1000],), (arr[1000:],))


def test_lr_and_momentum_schedules():
  cfg = T.TrainConfig(steps=100, warmup_steps=10, cooldown_frac=0.4,
                      final_lr_frac=0.1, momentum_start=0.85, momentum=0.95,
                      momentum_warmup_steps=50)
  m, beta = T.lr_multiplier(cfg), T.momentum_schedule(cfg)
  t = np.arange(101)
  ref = np.minimum((t + 1) / 10, 1.0) * (
      1 - 0.9 * np.clip((t - 60) / 40, 0, 1))
  np.testing.assert_allclose([float(m(s)) for s in t], ref, rtol=1e-6)
  np.testing.assert_allclose([float(beta(s)) for s in (0, 25, 50, 80)],
                             [0.85, 0.90, 0.95, 0.95], rtol=1e-6)


def test_config_validation():
  with pytest.raises(ValueError, match="optimizer"):
    T.TrainConfig(optimizer="sgd")
  with pytest.raises(ValueError, match="preset"):
    T.preset("gpt5")
  with pytest.raises(ValueError, match="mesh"):
    T.TrainConfig(mesh="model=2")
  g = T.preset("gpt2-small")
  assert (g.n_layer, g.d_model, g.n_head, g.context) == (12, 768, 12, 1024)


def test_labels_on_gpt():
  from flax import nnx
  model = nnx.eval_shape(lambda: T.default_model_fn(_tiny(), 256, nnx.Rngs(0)))
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  labels = T.hidden_matrix_labels(params)
  flat = {labels_lib.path_name(p): v for p, v in
          jax.tree_util.tree_flatten_with_path(labels)[0]}
  assert flat["wte/embedding"] == "other"
  assert flat["lm_head/kernel"] == "other"
  for k in ("attn/q", "attn/k", "attn/v", "attn/o", "mlp/fc", "mlp/proj"):
    assert flat[f"blocks/{k}/kernel"] == "hidden"


@pytest.mark.parametrize("opt", ["muon", "specgd"])
def test_spectral_arms_update_hidden_and_adam_the_rest(opt, rng):
  cfg = _tiny(optimizer=opt, warmup_steps=0)
  params = {"blocks": {"w": jnp.asarray(rng.standard_normal((2, 8, 12)),
                                        jnp.float32)},
            "wte": {"embedding": jnp.asarray(rng.standard_normal((5, 8)),
                                             jnp.float32)}}
  grads = jax.tree.map(
      lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params)
  tx = T.make_optimizer(cfg, params)
  upd, _ = tx.update(grads, tx.init(params), params)
  # AdamW on the embedding: first step is -lr·g/(|g|+eps) = -lr·sign(g)
  # (bias-corrected moments; wd 0), to fp32 rounding of eps/|g|.
  np.testing.assert_allclose(
      upd["wte"]["embedding"], -cfg.embed_lr * np.sign(grads["wte"]["embedding"]),
      rtol=1e-4, atol=1e-7)
  # Hidden stack: every layer's update is a (scaled, approximate) polar factor
  # of that layer's gradient alone: its singular values are nearly equal
  # (SpecGD exactly; Muon's Newton–Schulz within [0.6, 1.3] of each other).
  for layer in range(2):
    s = np.linalg.svd(np.asarray(upd["blocks"]["w"][layer], np.float64),
                      compute_uv=False)
    ratio = s.min() / s.max()
    assert ratio > (0.999 if opt == "specgd" else 0.5), (opt, s)
    # Direction of the polar factor U Vᵀ of that layer's gradient (first
    # step: momentum ∝ gradient). Cosine ≥ 0.9 allows Newton–Schulz's error.
    g = np.asarray(grads["blocks"]["w"][layer], np.float64)
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    d = -np.asarray(upd["blocks"]["w"][layer], np.float64)
    cos = np.sum(d * (u @ vt)) / (np.linalg.norm(d) * np.linalg.norm(u @ vt))
    assert cos > 0.9, (opt, cos)


def test_specgd_step_size_is_nuclear_norm(rng):
  # SpecGD (steepest descent in the operator norm) moves by lr·‖G‖_*·polar(G);
  # NumPy float64 reference, fp32 tolerance.
  cfg = _tiny(optimizer="specgd", warmup_steps=0, specgd_lr=0.1)
  g = rng.standard_normal((6, 9))
  params = {"blocks": {"w": jnp.zeros((6, 9), jnp.float32)},
            "lm_head": {"kernel": jnp.zeros((3, 2), jnp.float32)}}
  grads = {"blocks": {"w": jnp.asarray(g, jnp.float32)},
           "lm_head": {"kernel": jnp.ones((3, 2), jnp.float32)}}
  tx = T.make_optimizer(cfg, params)
  upd, _ = tx.update(grads, tx.init(params), params)
  u, s, vt = np.linalg.svd(g, full_matrices=False)
  np.testing.assert_allclose(upd["blocks"]["w"], -0.1 * s.sum() * u @ vt,
                             rtol=2e-4, atol=1e-5)


@pytest.mark.slow  # ~4 min on the loaded 2-core machine (4 compiles + tracking)
def test_train_tracks_and_resume_matches_uninterrupted(tmp_path, tiny_data):
  from experiments import train_gpt  # pylint: disable=g-import-not-at-top
  cfg = _tiny(ckpt_every=4)
  # The paper's figures (fig2_...) are the train-gpt experiment's.
  full = train_gpt.train(cfg, tmp_path / "full", data=tiny_data,
                         progress=False, plots=True)
  rows = T.read_metrics(tmp_path / "full")
  losses = [r["train_loss"] for r in rows if "train_loss" in r]
  assert losses[-1] < losses[0]
  tracked = [r for r in rows if "st" in r]
  assert [r["step"] for r in tracked] == [0, 4, 8]
  st, nr = tracked[-1]["st"], tracked[-1]["nr"]
  # Both sides of ReLU², per layer; raw-gradient nuclear ranks per layer.
  assert len(st["blocks/mlp/fc/preactivation"]) == 2
  assert len(st["blocks/mlp/proj/inputs"]) == 2
  for v in st["blocks/mlp/proj/inputs"] + nr["blocks/mlp/fc/kernel"]:
    assert 1.0 - 1e-4 <= v <= 64 + 1e-4  # 1 ≤ st, nr ≤ rank ≤ 4·16
  assert 1.0 <= st["wte/inputs"] <= cfg.batch_size * cfg.context
  assert os.path.exists(tmp_path / "full" / "fig2_mlp_activation_st.png")
  assert full["final_val_loss"] is not None

  # Interrupted after 5 steps (last checkpoint at 4), then resumed.
  part = tmp_path / "part"
  out = T.train(cfg, part, data=tiny_data, progress=False, stop_after=5,
                plots=False)
  assert out == {"stopped_at": 5}
  with pytest.raises(ValueError, match="resume"):
    T.train(cfg, part, data=tiny_data, progress=False)
  with pytest.raises(C.CheckpointError, match="optimizer"):
    T.train(dataclasses.replace(cfg, optimizer="adamw"), part,
            data=tiny_data, progress=False, resume=True)
  T.train(cfg, part, data=tiny_data, progress=False, resume=True, plots=False)
  strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"}
                      for r in rs]
  a, b = strip(rows), strip(T.read_metrics(part))
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for ra, rb in zip(a, b):
    assert ra.keys() == rb.keys()
    np.testing.assert_allclose(
        np.array(jax.tree.leaves(ra), np.float64),
        np.array(jax.tree.leaves(rb), np.float64), rtol=1e-6)


@pytest.mark.heavy
def test_resume_matches_uninterrupted_fast(tmp_path, tiny_data):
  # Tracking off, 4 steps, checkpoint at 2: the cheap version of the test
  # above (which also covers tracked metrics), for the default suite.
  cfg = _tiny(steps=4, ckpt_every=2, track_every=0, eval_every=2, log_every=1)
  T.train(cfg, tmp_path / "full", data=tiny_data, progress=False, plots=False)
  T.train(cfg, tmp_path / "part", data=tiny_data, progress=False,
          stop_after=3, plots=False)
  T.train(cfg, tmp_path / "part", data=tiny_data, progress=False, resume=True,
          plots=False)
  strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"}
                      for r in rs]
  a = strip(T.read_metrics(tmp_path / "full"))
  b = strip(T.read_metrics(tmp_path / "part"))
  assert [r["step"] for r in a] == [0, 1, 2, 3, 4] == [r["step"] for r in b]
  assert a == b  # bit-identical: same program, same inputs, restored state


def test_same_out_dir_twice_is_refused(tmp_path, tiny_data):
  with C.RunLock(tmp_path):
    with pytest.raises(RuntimeError, match="in use"):
      T.train(_tiny(), tmp_path, data=tiny_data, progress=False)


@pytest.mark.parametrize("field, value", [
    ("final_lr_frac", -50.0), ("final_lr_frac", float("nan")),
    ("final_lr_frac", 1.5), ("cooldown_frac", float("nan")), ("seed", -1)])
def test_config_names_the_bad_field(field, value):
  # Issue 18 item 4: final_lr_frac=-50 trained with gradient ascent in the
  # cooldown and exited 0; a NaN blamed the learning rate; seed=-1 went
  # unnamed.
  with pytest.raises(ValueError, match=field):
    _tiny(**{field: value})


def test_zero_steps_reports_no_throughput(tmp_path, tiny_data):
  # Issue 18 item 4: --steps 0 reported 1.28e11 tokens/s (a rate over no
  # timed step).
  out = T.train(_tiny(steps=0), tmp_path, data=tiny_data, progress=False,
                plots=False)
  assert out["tokens_per_s"] is None and out["track_overhead"] is None


def test_resume_on_changed_data_is_refused(tmp_path, tiny_data):
  # Issue 18 item 5: data rewritten under the same name between a kill and
  # --resume trained on silently; it is fingerprinted by content now.
  cfg = _tiny(steps=4, ckpt_every=2, track_every=0, eval_every=2, log_every=1)
  T.train(cfg, tmp_path, data=tiny_data, progress=False, stop_after=2,
          plots=False)
  arr = np.array(tiny_data.train[0])
  arr[-5:] = (arr[-5:].astype(int) + 1) % 256  # same length and name
  changed = D.TokenData(tiny_data.name, 256, (arr,), tiny_data.val)
  with pytest.raises(C.CheckpointError, match="data_content"):
    T.train(cfg, tmp_path, data=changed, progress=False, resume=True,
            plots=False)
  T.train(cfg, tmp_path, data=tiny_data, progress=False, resume=True,
          plots=False)
  assert [r["step"] for r in T.read_metrics(tmp_path)] == [0, 1, 2, 3, 4]


def test_resume_without_checkpoint_starts_over(tmp_path, tiny_data, capfd):
  # Issue 18 item 3: a run stopped before its first checkpoint left the
  # folder stuck ("already holds a run" / "--resume: no checkpoint").
  cfg = _tiny(steps=3, ckpt_every=0, track_every=0, eval_every=3, log_every=1)
  T.train(cfg, tmp_path / "fresh", data=tiny_data, progress=False, plots=False)
  stuck = tmp_path / "stuck"
  stuck.mkdir()
  (stuck / "metrics.jsonl").write_text('{"step": 0, "train_loss": 5.0}\n')
  with pytest.raises(ValueError, match="already holds a run"):
    T.train(cfg, stuck, data=tiny_data, progress=False, plots=False)
  T.train(cfg, stuck, data=tiny_data, progress=False, resume=True,
          plots=False)
  assert "starting the run over" in capfd.readouterr().err
  strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"}
                      for r in rs]
  assert strip(T.read_metrics(stuck)) == strip(T.read_metrics(
      tmp_path / "fresh"))


@pytest.mark.slow  # Each arm's resume is tested in the default suite.
def test_compare_resumes_arm_by_arm(tmp_path, tiny_data):
  # Issue 18 item 3: an interrupted --compare could not be resumed. Arm 1
  # finished, arm 2 stopped after a checkpoint, arm 3 never began.
  from experiments import train_gpt  # pylint: disable=g-import-not-at-top
  cfg = _tiny(steps=4, ckpt_every=2, track_every=0, eval_every=2, log_every=1)
  opts = ["adamw", "muon", "specgd"]
  fresh = train_gpt.run_comparison(cfg, opts, tmp_path / "fresh",
                                   progress=False, data=tiny_data)
  part = tmp_path / "part"
  T.train(dataclasses.replace(cfg, optimizer="adamw"), part / "adamw",
          data=tiny_data, progress=False, plots=False)
  T.train(dataclasses.replace(cfg, optimizer="muon"), part / "muon",
          data=tiny_data, progress=False, plots=False, stop_after=2)
  resumed = train_gpt.run_comparison(cfg, opts, part, progress=False,
                                     data=tiny_data, resume=True)
  strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"}
                      for r in rs]
  for opt in opts:
    assert strip(resumed["metrics"][opt]) == strip(fresh["metrics"][opt]), opt
  assert (part / "summary.md").exists()


def test_garbage_metrics_line_names_the_file_and_line(tmp_path):
  # Issue 18 item 6: "Expecting property name" without the file's name.
  (tmp_path / "metrics.jsonl").write_text(
      '{"step": 0}\n{garbage\n{"step": 2}\n{"step": 3, "cut')
  with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2: not a JSON"):
    T.read_metrics(tmp_path)
  (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1, "cu')
  assert T.read_metrics(tmp_path) == [{"step": 0}]  # a cut last line: dropped
