"""The memory budget of batched matrix calls: how many equal slices go into
one call (:func:`group_calls`) and what each counts (:func:`counted_bytes`).

Shared by :mod:`spectral_jax.placement` (one device, or XLA's moves on a
mesh) and :mod:`spectral_jax.shard_plan` (explicit collectives).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = ["DEFAULT_BATCH_BYTES", "counted_bytes", "group_calls"]

# The default memory budget: 16 MiB per batched call and device, counted by
# counted_bytes. Chosen by measurement (BENCHMARKS.md, "Muon on a mesh"): every
# group of the 6-layer width-256 tree runs in one call (its largest, twelve
# 256×1024 slices, counts 15 MiB), while on the GPT-2-small tree (768×768
# slices three to a call, larger ones alone) compiled temp memory of one
# float32 update stays below optax.contrib.muon's.
DEFAULT_BATCH_BYTES = 16 * 2**20


def counted_bytes(shape, dtype) -> int:
  """Bytes one ``(m, n)`` slice counts against ``batch_bytes``:
  ``(m·n + min(m, n)²) · max(itemsize, 4)``.

  The Gram term: a batched polar call holds m×m temporaries per slice
  (Newton–Schulz's A, A², polynomial; an SVD's U) besides its input, as
  large as the input itself for a square slice, so input bytes alone let
  square slices into calls twice as large in memory as wide ones. Counted
  at float32 or wider: XLA on CPU computes 16-bit products in float32 (it
  converts each operand to a float32 copy), so a bfloat16 call's temp memory
  is no smaller than a float32 one's (measured, Newton–Schulz on six 768×768
  slices: 42.5 MB bfloat16, 28.3 MB float32).
  """
  m, n = shape[-2:]
  return (m * n + min(m, n)**2) * max(jnp.dtype(dtype).itemsize, 4)


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
