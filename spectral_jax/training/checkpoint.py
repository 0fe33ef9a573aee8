"""Orbax checkpoints for the training loop, with the checks a long run needs.

A checkpoint holds the array leaves of the training state (parameters,
optimizer state, RNG key) under positional names, plus JSON metadata: the step
(which is also the data position, since batches are a function of
``(seed, step)``), the data seed, the running train-loss accumulator, the
configuration fingerprint and every leaf's path, shape and dtype. Restoring
compares all of these with the run being resumed, so a checkpoint from another
model, optimizer or configuration is refused with a message that says what
differs, never silently restarted or half-loaded.

:class:`RunLock` keeps two runs from writing into the same folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
from typing import Any

import jax
import numpy as np

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "RunLock",
    "check_writable",
]


class CheckpointError(RuntimeError):
  """A checkpoint is missing, corrupt, or does not match the run."""


def check_writable(directory) -> pathlib.Path:
  """Creates ``directory`` if needed and checks a file can be written in it.

  Raises:
    ValueError: naming the folder, before any training starts.
  """
  directory = pathlib.Path(directory)
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".write_test.{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as err:
    raise ValueError(f"--out {directory}: cannot write there ({err.strerror or err}).") from None
  return directory


class RunLock:
  """An exclusive ``flock`` on ``DIR/.lock`` for the lifetime of a run.

  The kernel drops the lock when the process dies, so a killed run never
  leaves a stale lock behind; the file records the owner for the message.
  """

  def __init__(self, directory):
    self.path = pathlib.Path(directory) / ".lock"
    self._fd = None

  def __enter__(self):
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
      owner = os.pread(fd, 200, 0).decode(errors="replace").strip()
      os.close(fd)
      if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise RuntimeError(
            f"{self.path.parent} is in use by another run ({owner or 'unknown'}); "
            "use another --out folder or wait for it to finish.") from None
      raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
    return False


def _leaf_specs(tree) -> list[dict]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [{"path": jax.tree_util.keystr(p), "shape": list(np.shape(x)),
           "dtype": str(x.dtype)} for p, x in leaves]


class Checkpointer:
  """Saves and restores ``(state, meta)`` pairs under ``directory/<step>``.

  Args:
    directory: the checkpoint folder (created).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory, max_to_keep: int = 2):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True,
        # Synchronous saves: a save is complete (and atomic, via orbax's
        # temporary folder + rename) when ``save`` returns, so a run killed
        # right after it resumes from exactly that step.
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, meta: dict[str, Any]) -> None:
    """Writes ``state`` (a pytree of arrays) and ``meta`` (JSON) at ``step``."""
    ocp = self._ocp
    leaves = jax.tree.leaves(state)
    items = {f"leaf_{i:05d}": x for i, x in enumerate(leaves)}
    meta = dict(meta, step=int(step), leaves=_leaf_specs(state))
    self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)))
    self._manager.wait_until_finished()

  def restore(self, target, expect: dict[str, Any], step: int | None = None):
    """Restores into the structure, shapes and shardings of ``target``.

    Args:
      target: a pytree like the saved state (its arrays give shapes, dtypes
        and shardings; values are ignored).
      expect: metadata entries that must equal the saved ones (e.g. the
        configuration fingerprint).
      step: which checkpoint; ``None`` = the latest.

    Returns:
      ``(state, meta)``.

    With ``step=None``, an unreadable or corrupt latest checkpoint (a
    truncated file, a damaged disk) falls back to the previous one, with one
    line on stderr saying so; a checkpoint that does not match this run is
    never skipped.

    Raises:
      CheckpointError: no checkpoint, no readable checkpoint, or a mismatch.
    """
    if step is not None:
      return self._restore(target, expect, step)
    steps = sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      raise CheckpointError(f"--resume: no checkpoint in {self.directory}.")
    for i, candidate in enumerate(steps):
      try:
        return self._restore(target, expect, candidate)
      except _Unreadable as err:
        if i + 1 == len(steps):
          raise CheckpointError(f"{err} No earlier checkpoint to fall back "
                                "to.") from None
        print(f"warning: {err} Falling back to step {steps[i + 1]}.",
              file=sys.stderr)
    raise AssertionError("unreachable")

  def _restore(self, target, expect: dict[str, Any], step: int):
    ocp = self._ocp
    where = self.directory / str(step)
    try:
      meta = self._manager.restore(
          step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as err:  # orbax raises many types for damaged files.
      raise _Unreadable(
          f"checkpoint {where} is unreadable ({type(err).__name__}: "
          f"{str(err)[:300]}).") from None
    for key, want in expect.items():
      got = meta.get(key)
      if got != want:
        if isinstance(got, dict) and isinstance(want, dict):
          keys = sorted(k for k in set(got) | set(want)
                        if got.get(k) != want.get(k))
          detail = "; ".join(f"{k} = {_short(got.get(k), 60)} there, "
                             f"{_short(want.get(k), 60)} here" for k in keys[:5])
        else:
          detail = f"{_short(got)} there, {_short(want)} here"
        raise CheckpointError(
            f"checkpoint {where} does not match this run ({key}: {detail}).")
    want_specs = _leaf_specs(target)
    got_specs = meta.get("leaves")
    if got_specs != want_specs:
      diff = _first_difference(got_specs or [], want_specs)
      raise CheckpointError(
          f"checkpoint {where} holds a different training state: {diff}.")
    leaves, treedef = jax.tree.flatten(target)
    abstract = {f"leaf_{i:05d}": jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=getattr(x, "sharding", None))
                for i, x in enumerate(leaves)}
    try:
      items = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))["state"]
    except Exception as err:
      raise _Unreadable(
          f"checkpoint {where} is corrupt ({type(err).__name__}: "
          f"{str(err)[:300]}).") from None
    restored = [items[f"leaf_{i:05d}"] for i in range(len(leaves))]
    return jax.tree.unflatten(treedef, restored), meta

  def close(self) -> None:
    self._manager.close()


class _Unreadable(CheckpointError):
  """A checkpoint whose files cannot be read (not a mismatch)."""


def _short(x, n=200) -> str:
  s = json.dumps(x, sort_keys=True, default=str)
  return s if len(s) <= n else s[:n] + "…"


def _first_difference(got: list, want: list) -> str:
  if len(got) != len(want):
    return f"{len(got)} arrays saved, {len(want)} expected"
  for g, w in zip(got, want):
    if g != w:
      return (f"{g['path']} saved as {g['dtype']}{g['shape']}, expected "
              f"{w['path']} {w['dtype']}{w['shape']}")
  return "unknown difference"
