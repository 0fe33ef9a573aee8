"""One check of an output folder, run before any work (bench, reproduce)."""

from __future__ import annotations

import os
import tempfile

from experiments.errors import UsageError


def prepare_out_dir(out: str | os.PathLike, flag: str = "--out",
                    subdirs: tuple[str, ...] = ()) -> str:
  """Creates ``out`` (and ``subdirs`` in it) and checks it is writable.

  Called before the work a subcommand does, so that a bad ``--out`` costs
  nothing: an existing path that is not a folder (a file) or a folder the
  process cannot write is refused with a one-line ``UsageError``.

  Returns:
    ``out`` as an absolute path.
  """
  out = os.path.abspath(os.fspath(out))
  if os.path.exists(out) and not os.path.isdir(out):
    raise UsageError(f"{flag} {out!r} exists and is not a directory")
  try:
    os.makedirs(out, exist_ok=True)
    for sub in subdirs:
      os.makedirs(os.path.join(out, sub), exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=out, prefix=".probe-")
    os.close(fd)
    os.unlink(probe)
  except OSError as err:
    raise UsageError(f"{flag} {out!r} is not writable ({err.strerror})") \
        from None
  return out
