"""Files that are never half-written: the one atomic-write helper.

Every file the library and the experiments write (metrics, summaries,
reports, figures, benchmark results) goes through ``atomic_write``: the data
goes to a temporary file in the destination folder, is flushed to disk, and
replaces the destination with ``os.replace``, so a run killed at any moment
leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO], object],
                 mode: str = "w") -> str:
  """Calls ``write(f)`` on a temporary file, then moves it onto ``path``.

  Args:
    path: the destination; its folder is created if missing.
    write: writes the content to the open file object it is given (e.g.
      ``lambda f: fig.savefig(f, format="png")``).
    mode: ``"w"`` (text, UTF-8) or ``"wb"`` (bytes).

  Returns:
    ``path`` as a string.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"mode={mode!r} is not allowed; allowed: ('w', 'wb').")
  path = os.fspath(path)
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                             suffix=os.path.splitext(path)[1])
  try:
    kwargs = {"encoding": "utf-8"} if mode == "w" else {}
    with os.fdopen(fd, mode, **kwargs) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    # mkstemp makes 0600 files; give the result ordinary permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
  """Writes ``text`` to ``path`` atomically."""
  return atomic_write(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
  """Writes ``data`` to ``path`` atomically."""
  return atomic_write(path, lambda f: f.write(data), "wb")
