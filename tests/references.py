"""Independent reference implementations shared by several test modules."""

import jax.numpy as jnp
import numpy as np


def textbook_newton_schulz(g, rows, safety=1.0, dtype=jnp.float32):
  """Newton–Schulz as optax and KellerJordan write it, in ``dtype`` throughout.

  ``X_0 = G / (safety ‖G‖_F)`` (wide: transposed if tall), then
  ``X ← aX + (bA + cA²)X`` with ``A = XXᵀ`` and Python-float coefficients
  (weakly typed, so every product stays in ``dtype``). The yardstick for
  16-bit iterations: a true bf16 iteration is ~6-9% off the float32 one.
  """
  g = np.asarray(g, np.float64)
  tall = g.shape[0] > g.shape[1]
  x = jnp.asarray((g.T if tall else g) / (safety * np.linalg.norm(g)), dtype)
  for a, b, c in rows:
    gram = x @ x.T
    x = float(a) * x + (float(b) * gram + float(c) * (gram @ gram)) @ x
  x = np.asarray(x.astype(jnp.float32), np.float64)
  return x.T if tall else x
