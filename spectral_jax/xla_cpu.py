"""A workaround for an XLA CPU runtime hang, applied when spectral_jax loads.

On the CPU backend (jaxlib 0.9.2 and 0.10.2, seen on a 2-core x86 machine), a
jitted program holding two or more LAPACK calls (SVDs of two shapes, two
eighs, two QRs: what ``polar(method="svd")`` does for two groups of
equal-shaped leaves) deadlocks after a few to a few dozen calls: every XLA
worker thread waits for work and the caller waits in ``block_until_ready``,
forever, at 0 % CPU. Disabling XLA CPU's concurrency-optimized thunk
scheduler made 200–300 consecutive calls of each reproducer finish (and the
SpecGD training step that hung on its second call run 30 times).

``apply()`` appends ``--xla_cpu_enable_concurrency_optimized_scheduler=false``
to ``XLA_FLAGS``. XLA reads that variable when JAX creates its CPU backend (the
first computation), so this works only if ``spectral_jax`` is imported before
any JAX computation runs; set the flag yourself otherwise. The flag changes
the order in which independent operations are scheduled, not any result.
Set ``SPECTRAL_JAX_KEEP_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` alone.
"""

from __future__ import annotations

import os

__all__ = ["FLAG", "apply"]

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
_NAME = FLAG.split("=")[0]
# The flag was checked to exist and to stop the hang on jaxlib 0.9.2 and
# 0.10.2; 0.9.0–0.9.1 are assumed to have it. An unknown flag in XLA_FLAGS
# aborts the process, so older jaxlibs are left alone.
_MIN_JAXLIB = (0, 9)


def _jaxlib_version() -> tuple[int, ...]:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    text = metadata.version("jaxlib")
  except metadata.PackageNotFoundError:
    return ()
  parts = []
  for piece in text.split(".")[:2]:
    digits = "".join(ch for ch in piece if ch.isdigit())
    parts.append(int(digits) if digits else 0)
  return tuple(parts)


def apply(environ=None) -> bool:
  """Add the flag to ``XLA_FLAGS`` unless the user set it (either value),
  opted out, or jaxlib is older than the versions it was checked on.

  Returns whether the flag is now in ``XLA_FLAGS`` with our value.
  """
  env = os.environ if environ is None else environ
  flags = env.get("XLA_FLAGS", "")
  if _NAME in flags:
    return FLAG in flags.split()
  if env.get("SPECTRAL_JAX_KEEP_XLA_FLAGS", "") not in ("", "0"):
    return False
  if _jaxlib_version() < _MIN_JAXLIB:
    return False
  env["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
  return True
