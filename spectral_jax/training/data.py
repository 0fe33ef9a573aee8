"""Token sources for GPT training: no download, deterministic, resumable.

Three sources, one interface (:class:`TokenData`):

  * ``stdlib_corpus()``: a byte-level corpus (vocabulary 256) made of the
    running Python's standard-library ``*.py`` files, read in sorted path order.
    Every 20th file goes to validation, so the split is deterministic and both
    halves look alike. It differs between Python versions: the version is part
    of ``TokenData.name``.
  * ``text_file(path)``: any UTF-8 text file, byte-level; the last
    ``val_fraction`` of the bytes is the validation split.
  * ``token_shards(dir)``: a directory of llm.c / modded-nanogpt token shards
    (``*.bin``: a header of 256 int32, ``[20240520, 1, n_tokens, 0, …]``, then
    ``n_tokens`` uint16 tokens). Shards are opened with ``np.memmap``: a batch
    reads only the pages it touches, so 10B tokens never have to fit in memory.
    Files whose name contains ``val`` form the validation split; with none, the
    last ``val_fraction`` of the last shard is held out.

Batches are a pure function of ``(seed, step)`` (:meth:`TokenData.train_batch`):
the "iterator position" is just the step, every optimizer of a comparison sees
the same data in the same order, and a resumed run continues bit-for-bit.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import sys
import sysconfig

import numpy as np

from spectral_jax import files

__all__ = [
    "SHARD_MAGIC",
    "SHARD_VERSION",
    "TokenData",
    "load_data",
    "read_shard",
    "stdlib_corpus",
    "text_file",
    "token_shards",
    "write_shard",
]

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
_HEADER_INTS = 256
_VAL_EVERY = 20  # every 20th stdlib file is validation (5 %).


@dataclasses.dataclass(frozen=True)
class TokenData:
  """Train and validation token segments plus a vocabulary size.

  Attributes:
    name: a human-readable description of the source (recorded in metrics).
    vocab_size: number of distinct token ids the model must embed.
    train: tuple of 1-D integer arrays (ndarrays or memmaps) to sample from.
    val: tuple of 1-D integer arrays for validation.
  """

  name: str
  vocab_size: int
  train: tuple
  val: tuple

  def fingerprint(self, blocks: int = 16, block: int = 1024) -> str:
    """A content hash: every segment's length and ``blocks`` evenly spaced
    blocks of ``block`` tokens from each (the first and last included).

    Cheap on 1e9-token memmaps, and a file rewritten at the same path shows
    (resuming on changed data is refused); a change confined to the tokens
    between the sampled blocks may not.
    """
    h = hashlib.sha256(f"{self.vocab_size}".encode())
    for split, segments in (("train", self.train), ("val", self.val)):
      for seg in segments:
        n = len(seg)
        h.update(f"{split}:{n}:".encode())
        starts = np.unique(np.linspace(0, max(n - block, 0), blocks)
                           .astype(np.int64))
        for i in starts:
          h.update(np.ascontiguousarray(seg[i:i + block], "<i8").tobytes())
    return h.hexdigest()[:32]

  @property
  def n_train(self) -> int:
    return int(sum(len(s) for s in self.train))

  @property
  def n_val(self) -> int:
    return int(sum(len(s) for s in self.val))

  def train_batch(self, seed: int, step: int, batch_size: int,
                  block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch number ``step``: ``(x, y)`` int32 arrays of shape (B, T).

    Windows of ``T + 1`` tokens start at uniform random offsets; a window's
    segment is chosen with probability proportional to its usable length. The
    generator is seeded by ``(seed, step)``, so no iterator state exists.
    """
    rng = np.random.default_rng([int(seed), int(step)])
    return _sample(self.train, rng, batch_size, block_size)

  def val_batches(self, n_batches: int, batch_size: int,
                  block_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_batches`` fixed validation batches (the same at every evaluation).

    Windows tile the validation segments from their start, evenly spaced over
    the whole split, so the estimate covers all of it and never changes.
    """
    starts = _val_starts(self.val, n_batches * batch_size, block_size)
    out = []
    for b in range(n_batches):
      rows = [_window(self.val, s, block_size + 1)
              for s in starts[b * batch_size:(b + 1) * batch_size]]
      w = np.stack(rows).astype(np.int32)
      out.append((w[:, :-1], w[:, 1:]))
    return out


def _usable(segments, block_size):
  return np.array([max(len(s) - block_size, 0) for s in segments], np.int64)


def _sample(segments, rng, batch_size, block_size):
  usable = _usable(segments, block_size)
  if usable.sum() == 0:
    raise ValueError(
        f"block_size={block_size} is too long for the data: every segment has "
        f"at most {max(len(s) for s in segments)} tokens; use a shorter "
        "context or more data.")
  seg = rng.choice(len(segments), size=batch_size, p=usable / usable.sum())
  off = rng.integers(0, usable[seg])
  w = np.stack([np.asarray(segments[i][o:o + block_size + 1])
                for i, o in zip(seg, off)]).astype(np.int32)
  return w[:, :-1], w[:, 1:]


def _val_starts(segments, n_windows, block_size):
  usable = _usable(segments, block_size)
  total = int(usable.sum())
  if total == 0:
    raise ValueError(
        f"block_size={block_size} is too long for the validation split "
        f"({sum(len(s) for s in segments)} tokens).")
  # Global offsets spread evenly over the concatenated usable ranges.
  return np.linspace(0, total - 1, n_windows).astype(np.int64)


def _window(segments, global_start, length):
  usable = _usable(segments, length - 1)
  for seg, u in zip(segments, usable):
    if global_start < u:
      return np.asarray(seg[global_start:global_start + length])
    global_start -= u
  raise AssertionError("offset beyond the data")  # _val_starts prevents it.


# --------------------------------------------------------------------------
# Byte-level corpora.
# --------------------------------------------------------------------------
def _stdlib_files() -> list[pathlib.Path]:
  root = pathlib.Path(sysconfig.get_paths()["stdlib"])
  skip = {"site-packages", "dist-packages", "__pycache__"}
  return sorted((f for f in root.rglob("*.py")
                 if not skip.intersection(f.relative_to(root).parts)),
                key=lambda f: f.relative_to(root).as_posix())


@functools.lru_cache(maxsize=4)
def stdlib_corpus(max_bytes: int | None = None) -> TokenData:
  """Byte-level corpus of the standard library's ``*.py`` sources.

  Args:
    max_bytes: stop after this many bytes in total (``None``: every file; about
      30 MB for CPython 3.11). Files are taken whole, in sorted order.

  Returns:
    A :class:`TokenData` with vocabulary 256; file ``i`` is validation when
    ``i % 20 == 19``.
  """
  if max_bytes is not None and max_bytes < 1:
    raise ValueError(f"max_bytes must be >= 1 or None, got {max_bytes}.")
  train, val, total = [], [], 0
  for i, f in enumerate(_stdlib_files()):
    if max_bytes is not None and total >= max_bytes:
      break
    data = f.read_bytes()
    total += len(data)
    (val if i % _VAL_EVERY == _VAL_EVERY - 1 else train).append(data)
  if not train or not val:
    files = _stdlib_files()
    need = (sum(f.stat().st_size for f in files[:_VAL_EVERY - 1]) + 1
            if len(files) >= _VAL_EVERY else None)
    hint = (f"; the first validation file is read once max_bytes >= {need}"
            if need is not None else "")
    raise ValueError(
        f"the standard library at {sysconfig.get_paths()['stdlib']} gave too "
        f"few files for a train/validation split (max_bytes={max_bytes}, "
        f"{len(train)} train and {len(val)} validation files{hint}).")
  # One segment per split (files joined): windows may span a file boundary,
  # exactly as in a concatenated text corpus.
  to_arr = lambda parts: np.frombuffer(b"".join(parts), np.uint8)
  ver = ".".join(map(str, sys.version_info[:3]))
  return TokenData(name=f"python{ver}-stdlib-bytes", vocab_size=256,
                   train=(to_arr(train),), val=(to_arr(val),))


def text_file(path, val_fraction: float = 0.05) -> TokenData:
  """Byte-level corpus of one UTF-8 text file; the tail is validation.

  Args:
    path: the file.
    val_fraction: fraction of the bytes (taken from the end) for validation.
  """
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
  path = pathlib.Path(path)
  raw = path.read_bytes()
  try:
    raw.decode("utf-8")
  except UnicodeDecodeError as err:
    raise ValueError(f"--data {path}: not UTF-8 text ({err}).") from None
  arr = np.frombuffer(raw, np.uint8)
  cut = int(round(len(arr) * (1.0 - val_fraction)))
  return TokenData(name=f"bytes:{path.name}", vocab_size=256,
                   train=(arr[:cut],), val=(arr[cut:],))


# --------------------------------------------------------------------------
# llm.c / modded-nanogpt token shards.
# --------------------------------------------------------------------------
def read_shard(path) -> np.memmap:
  """Memory-maps the tokens of one ``.bin`` shard after checking its header.

  Raises:
    ValueError: naming the file when the magic number, version or token count
      does not match the format.
  """
  path = pathlib.Path(path)
  size = path.stat().st_size
  if size < _HEADER_INTS * 4:
    raise ValueError(f"{path}: {size} bytes, shorter than the 1024-byte "
                     "header of an llm.c token shard.")
  header = np.fromfile(path, dtype="<i4", count=_HEADER_INTS)
  if header[0] != SHARD_MAGIC:
    raise ValueError(f"{path}: bad magic number {header[0]} (expected "
                     f"{SHARD_MAGIC}); not an llm.c / modded-nanogpt shard.")
  if header[1] != SHARD_VERSION:
    raise ValueError(f"{path}: unsupported shard version {header[1]} "
                     f"(expected {SHARD_VERSION}).")
  n = int(header[2])
  if n < 0 or size != _HEADER_INTS * 4 + 2 * n:
    raise ValueError(f"{path}: header says {n} tokens but the file holds "
                     f"{(size - _HEADER_INTS * 4) / 2:g}; truncated or corrupt.")
  return np.memmap(path, dtype="<u2", mode="r", offset=_HEADER_INTS * 4,
                   shape=(n,))


def write_shard(path, tokens) -> None:
  """Writes ``tokens`` (ints in [0, 65535]) as an llm.c shard, atomically."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 1 or (tokens.size and (tokens.min() < 0
                                           or tokens.max() > 65535)):
    raise ValueError("tokens must be a 1-D array of ids in [0, 65535].")
  header = np.zeros(_HEADER_INTS, "<i4")
  header[:3] = (SHARD_MAGIC, SHARD_VERSION, tokens.size)
  files.atomic_write_bytes(path, header.tobytes()
                           + tokens.astype("<u2").tobytes())


def token_shards(directory, val_fraction: float = 0.05,
                 vocab_size: int = 50257) -> TokenData:
  """Token shards in ``directory``, memory-mapped.

  Args:
    directory: folder of ``*.bin`` shards (sorted by name).
    val_fraction: held out from the end of the last train shard when no file
      name contains ``val``.
    vocab_size: the tokenizer's vocabulary (GPT-2: 50257).
  """
  directory = pathlib.Path(directory)
  paths = sorted(directory.glob("*.bin"))
  if not paths:
    raise ValueError(f"--data {directory}: no *.bin token shards found.")
  val_files = [f for f in paths if "val" in f.name]
  train_files = [f for f in paths if f not in val_files]
  if not train_files:
    raise ValueError(f"--data {directory}: only validation shards found.")
  train = [read_shard(f) for f in train_files]
  val = [read_shard(f) for f in val_files]
  for path, tokens in zip(train_files + val_files, train + val):
    # One pass over each memory-mapped shard: an id past the embedding
    # table trained into NaN losses at step 0.
    top = int(tokens.max()) if len(tokens) else -1
    if top >= vocab_size:
      raise ValueError(
          f"--data {path}: token id {top} is outside the vocabulary "
          f"(vocab_size={vocab_size}: ids must be in [0, {vocab_size - 1}]).")
  if not val:
    last = train.pop()
    cut = int(round(len(last) * (1.0 - val_fraction)))
    train.append(last[:cut])
    val = [last[cut:]]
  return TokenData(name=f"shards:{directory.name}({len(train_files)} train)",
                   vocab_size=vocab_size, train=tuple(train), val=tuple(val))


def load_data(spec: str | None = None) -> TokenData:
  """The source named by ``--data``: ``None``/``"stdlib"``, a file, or a dir."""
  if spec in (None, "", "stdlib"):
    return stdlib_corpus()
  path = pathlib.Path(spec)
  if path.is_dir():
    return token_shards(path)
  if path.is_file():
    return text_file(path)
  raise ValueError(f"--data {spec!r}: no such file or directory (allowed: "
                   "'stdlib', a UTF-8 text file, or a folder of .bin shards).")
