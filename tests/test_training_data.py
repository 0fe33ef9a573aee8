"""Tests for spectral_jax.training.data: shards, byte corpora, batches."""

import re

import numpy as np
import pytest

from spectral_jax.training import data as D


def _is_window(tokens, row):
  """Whether ``row`` occurs contiguously in ``tokens`` (brute force, small)."""
  n = len(row)
  win = np.lib.stride_tricks.sliding_window_view(tokens, n)
  return bool((win == row).all(axis=1).any())


def test_shard_roundtrip_and_memmap(tmp_path, rng):
  tokens = rng.integers(0, 50257, size=1000)
  D.write_shard(tmp_path / "a.bin", tokens)
  got = D.read_shard(tmp_path / "a.bin")
  assert isinstance(got, np.memmap)
  np.testing.assert_array_equal(np.asarray(got), tokens)
  raw = np.fromfile(tmp_path / "a.bin", "<i4", count=3)
  np.testing.assert_array_equal(raw, [D.SHARD_MAGIC, D.SHARD_VERSION, 1000])


def test_bad_magic_version_and_truncation(tmp_path, rng):
  tokens = rng.integers(0, 100, size=50)
  D.write_shard(tmp_path / "x.bin", tokens)
  raw = bytearray((tmp_path / "x.bin").read_bytes())
  bad = raw.copy()
  bad[0:4] = np.int32(12345).tobytes()
  (tmp_path / "bad.bin").write_bytes(bytes(bad))
  with pytest.raises(ValueError, match="magic"):
    D.read_shard(tmp_path / "bad.bin")
  ver = raw.copy()
  ver[4:8] = np.int32(7).tobytes()
  (tmp_path / "ver.bin").write_bytes(bytes(ver))
  with pytest.raises(ValueError, match="version"):
    D.read_shard(tmp_path / "ver.bin")
  (tmp_path / "trunc.bin").write_bytes(bytes(raw[:-10]))
  with pytest.raises(ValueError, match="truncated"):
    D.read_shard(tmp_path / "trunc.bin")
  (tmp_path / "bad.bin").rename(tmp_path / "sub_bad.bin")
  sub = tmp_path / "dir"
  sub.mkdir()
  (tmp_path / "sub_bad.bin").rename(sub / "train_0.bin")
  with pytest.raises(ValueError, match="magic"):
    D.token_shards(sub)


def test_token_shards_batches_are_windows(tmp_path, rng):
  t0 = rng.integers(0, 500, size=300)
  t1 = rng.integers(0, 500, size=200)
  tv = rng.integers(0, 500, size=120)
  D.write_shard(tmp_path / "fineweb_train_000001.bin", t0)
  D.write_shard(tmp_path / "fineweb_train_000002.bin", t1)
  D.write_shard(tmp_path / "fineweb_val_000000.bin", tv)
  data = D.token_shards(tmp_path)
  assert data.n_train == 500 and data.n_val == 120
  x, y = data.train_batch(seed=3, step=7, batch_size=6, block_size=16)
  assert x.shape == y.shape == (6, 16) and x.dtype == np.int32
  np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
  for xr, yr in zip(x, y):
    row = np.concatenate([xr, yr[-1:]])
    # A window never straddles two shards.
    assert _is_window(t0, row) or _is_window(t1, row)
  # Same (seed, step) → same batch; another step → another batch.
  x2, _ = data.train_batch(seed=3, step=7, batch_size=6, block_size=16)
  x3, _ = data.train_batch(seed=3, step=8, batch_size=6, block_size=16)
  np.testing.assert_array_equal(x, x2)
  assert not np.array_equal(x, x3)
  val = data.val_batches(2, 3, 16)
  for xv, yv in val:
    for xr, yr in zip(xv, yv):
      assert _is_window(tv, np.concatenate([xr, yr[-1:]]))
  np.testing.assert_array_equal(val[0][0], data.val_batches(2, 3, 16)[0][0])


def test_shards_without_val_file_hold_out_tail(tmp_path, rng):
  t0 = rng.integers(0, 500, size=400)
  D.write_shard(tmp_path / "a.bin", t0)
  data = D.token_shards(tmp_path, val_fraction=0.25)
  assert data.n_train == 300 and data.n_val == 100
  np.testing.assert_array_equal(np.asarray(data.val[0]), t0[300:])


def test_text_file_split_and_utf8(tmp_path):
  text = "héllo wörld\n" * 100
  (tmp_path / "t.txt").write_text(text, encoding="utf-8")
  data = D.text_file(tmp_path / "t.txt", val_fraction=0.1)
  raw = np.frombuffer(text.encode(), np.uint8)
  assert data.vocab_size == 256
  np.testing.assert_array_equal(
      np.concatenate([data.train[0], data.val[0]]), raw)
  assert abs(data.n_val - 0.1 * len(raw)) <= 1
  (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00bad")
  with pytest.raises(ValueError, match="UTF-8"):
    D.text_file(tmp_path / "b.txt")
  with pytest.raises(ValueError, match="no such"):
    D.load_data(str(tmp_path / "missing"))


def test_stdlib_corpus_deterministic():
  a = D.stdlib_corpus(max_bytes=1_000_000)
  b = D.stdlib_corpus.__wrapped__(max_bytes=1_000_000)  # bypass the cache
  assert a.vocab_size == 256 and a.n_train > 0 and a.n_val > 0
  np.testing.assert_array_equal(a.train[0], b.train[0])
  np.testing.assert_array_equal(a.val[0], b.val[0])
  # Python source is mostly ASCII text.
  assert (a.train[0] < 128).mean() > 0.95
  with pytest.raises(ValueError, match="block_size"):
    a.train_batch(0, 0, 2, a.n_train + 10)


def test_stdlib_corpus_too_small_cap_says_the_smallest_that_works():
  with pytest.raises(ValueError, match=r"0 validation files.*max_bytes >= ") as err:
    D.stdlib_corpus.__wrapped__(max_bytes=1_000)
  need = int(re.search(r"max_bytes >= (\d+)", str(err.value)).group(1))
  with pytest.raises(ValueError, match="0 validation files"):
    D.stdlib_corpus.__wrapped__(max_bytes=need - 1)
  data = D.stdlib_corpus.__wrapped__(max_bytes=need)
  assert data.n_val > 0 and data.n_train > 0


def test_token_ids_beyond_the_vocabulary_are_refused(tmp_path):
  # Issue 18 item 2: ids >= vocab_size trained into NaN losses at step 0.
  D.write_shard(tmp_path / "a_train.bin", np.arange(300))
  D.write_shard(tmp_path / "b_val.bin", np.arange(50))
  with pytest.raises(ValueError, match=r"a_train\.bin.*token id 299.*"
                     r"vocab_size=256.*\[0, 255\]"):
    D.token_shards(tmp_path, vocab_size=256)
  assert D.token_shards(tmp_path, vocab_size=300).vocab_size == 300
