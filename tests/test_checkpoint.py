"""Tests for spectral_jax.training.checkpoint: round trip, mismatch, corruption, lock."""

import os
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax.training import checkpoint as C


class _State(NamedTuple):
  params: dict
  count: jnp.ndarray


def _state(rng, n=5):
  return _State({"w": jnp.asarray(rng.standard_normal((n, 3)), jnp.float32),
                 "b": jnp.asarray(rng.standard_normal(3), jnp.float32)},
                jnp.asarray(rng.integers(0, 100), jnp.int32))


def test_roundtrip_latest_and_meta(tmp_path, rng):
  ck = C.Checkpointer(tmp_path / "ckpt", max_to_keep=2)
  s1, s2 = _state(rng), _state(rng)
  ck.save(1, s1, {"config": {"a": 1}, "pending": [0.5]})
  ck.save(2, s2, {"config": {"a": 1}, "pending": [0.25]})
  assert ck.latest_step() == 2
  got, meta = ck.restore(_state(rng), expect={"config": {"a": 1}})
  assert isinstance(got, _State)
  for a, b in zip(jax_leaves(got), jax_leaves(s2)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit-exact
  assert meta["step"] == 2 and meta["pending"] == [0.25]
  got1, _ = ck.restore(_state(rng), expect={}, step=1)
  np.testing.assert_array_equal(got1.params["w"], s1.params["w"])
  ck.close()


def jax_leaves(t):
  import jax
  return jax.tree.leaves(t)


def test_mismatch_and_missing_are_clear_errors(tmp_path, rng):
  ck = C.Checkpointer(tmp_path / "ckpt")
  with pytest.raises(C.CheckpointError, match="no checkpoint"):
    ck.restore(_state(rng), expect={})
  ck.save(3, _state(rng), {"config": {"opt": "muon"}})
  with pytest.raises(C.CheckpointError, match="opt"):
    ck.restore(_state(rng), expect={"config": {"opt": "adamw"}})
  with pytest.raises(C.CheckpointError, match=r"\['w'\]"):
    ck.restore(_state(rng, n=6), expect={})
  ck.close()


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, rng):
  ck = C.Checkpointer(tmp_path / "ckpt")
  ck.save(1, _state(rng), {})
  # Damage every data file of the array item.
  state_dir = tmp_path / "ckpt" / "1" / "state"
  damaged = 0
  for root, _, files in os.walk(state_dir):
    for f in files:
      p = os.path.join(root, f)
      with open(p, "r+b") as fh:
        fh.truncate(max(os.path.getsize(p) // 3, 1))
        fh.seek(0)
        fh.write(b"\x00garbage\x00")
      damaged += 1
  assert damaged > 0
  with pytest.raises(C.CheckpointError, match="corrupt|unreadable"):
    C.Checkpointer(tmp_path / "ckpt").restore(_state(rng), expect={})


def test_corrupt_latest_falls_back_to_previous(tmp_path, rng, capfd):
  # Issue 18 item 6: a truncated latest checkpoint gave the right message
  # but no fallback; the previous good one is restored, with one line.
  ck = C.Checkpointer(tmp_path / "ckpt")
  good, later = _state(rng), _state(rng)
  ck.save(1, good, {"config": 1})
  ck.save(2, later, {"config": 1})
  ck.close()
  for root, _, names in os.walk(tmp_path / "ckpt" / "2" / "state"):
    for f in names:
      with open(os.path.join(root, f), "r+b") as fh:
        fh.truncate(1)
  state, meta = C.Checkpointer(tmp_path / "ckpt").restore(
      _state(rng), expect={"config": 1})
  assert meta["step"] == 1
  for a, b in zip(jax_leaves(state), jax_leaves(good)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  err = capfd.readouterr().err
  assert "checkpoint" in err and "Falling back to step 1" in err
  assert err.count("\n") == 1
  # A mismatch is never skipped over: it names the difference.
  with pytest.raises(C.CheckpointError, match="config"):
    C.Checkpointer(tmp_path / "ckpt").restore(_state(rng),
                                              expect={"config": 2})


def test_lock_and_writability(tmp_path):
  with C.RunLock(tmp_path):
    with pytest.raises(RuntimeError, match="in use"):
      with C.RunLock(tmp_path):
        pass
  with C.RunLock(tmp_path):  # released on exit
    pass
  f = tmp_path / "file"
  f.write_text("x")
  with pytest.raises(ValueError, match="cannot write"):
    C.check_writable(f / "sub")
