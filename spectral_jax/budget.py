"""The memory budget of batched matrix calls: how many equal slices go into
one call (:func:`group_calls`) and what each counts (:func:`counted_bytes`).

Shared by :mod:`spectral_jax.placement` (one device, or XLA's moves on a
mesh) and :mod:`spectral_jax.shard_plan` (explicit collectives).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["DEFAULT_BATCH_BYTES", "counted_bytes", "group_calls"]

# The default memory budget: 4 MiB per batched call and device, counted by
# counted_bytes. Chosen by measurement (BENCHMARKS.md, "Muon on a mesh", one
# device, 2026-12-04): compiled temp memory of one update at or below
# optax.contrib.muon's on the GPT-2-small tree and the bench's 6-layer
# width-256 tree, per-layer and stacked, float32 and bfloat16 (one row
# excepted: 6x256 bfloat16 per-layer), while the width-256 tree's float32
# update keeps its time (0.50x optax's per-layer, vs 0.49x at 16 MiB and
# 0.54x at 1 MiB, interleaved on 2 idle cores).
DEFAULT_BATCH_BYTES = 4 * 2**20


def counted_bytes(shape, dtype) -> int:
  """Bytes one ``(m, n)`` slice counts against ``batch_bytes``:
  ``(m·n + min(m, n)²) · w``.

  The Gram term: a batched polar call holds m×m temporaries per slice
  (Newton–Schulz's A, A², polynomial; an SVD's U) besides its input, as
  large as the input itself for a square slice, so input bytes alone let
  square slices into calls twice as large in memory as wide ones.

  ``w``, the working bytes per element: the itemsize for 32- and 64-bit
  dtypes; for 16-bit ones 4 (float32) on accelerators, and 10 on the CPU
  backend, where XLA computes a 16-bit product in float32 by converting both
  operands to float32 copies (``X`` and ``Xᵀ`` for a Gram matrix: 2 + 4 + 4
  bytes per element; measured, a bfloat16 call of six 768×768 slices holds
  1.5× a float32 one's temp memory).
  """
  m, n = shape[-2:]
  size = jnp.dtype(dtype).itemsize
  if size < 4:
    size = 10 if jax.default_backend() == "cpu" else 4
  return (m * n + min(m, n)**2) * size


def group_calls(total: int, slice_bytes: int, devices: int = 1,
                batch_bytes: int = DEFAULT_BATCH_BYTES) -> list[int]:
  """Slices per batched call for a group of ``total`` equal slices.

  Every call holds a multiple of ``devices`` slices (the last may be padded)
  and at most ``batch_bytes // slice_bytes`` per device (at least one); calls
  are sized evenly. Returns the padded size of each call.
  """
  per_device = math.ceil(total / devices)
  cap = max(1, batch_bytes // max(slice_bytes, 1))
  calls = math.ceil(per_device / cap) if per_device else 0
  size = math.ceil(per_device / calls) * devices if calls else 0
  return [size] * calls
