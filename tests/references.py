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


def torch_newton_schulz(u, steps=5, eps=1e-7):
  """torch.optim.Muon's / KellerJordan's iteration in float64 NumPy: Jordan's
  (3.4445, -4.7750, 2.0315) ``steps`` times from ``G / (‖G‖_F + eps)``,
  transposed to wide and back."""
  x = u.T if u.shape[0] > u.shape[1] else u
  x = x / (np.linalg.norm(x) + eps)
  for _ in range(steps):
    a = x @ x.T
    x = 3.4445 * x + (-4.7750 * a + 2.0315 * a @ a) @ x
  return x.T if u.shape[0] > u.shape[1] else x


def rf_quadratic(rng, k=30, d=15, n=120):
  """A random-feature least-squares loss ``w -> ‖w A − Y‖²/(2n)`` with ReLU
  features ``A`` (k × n) and targets ``Y``; returns ``(loss, A, Y, n)``."""
  x = rng.standard_normal((d, n))
  v = rng.standard_normal((k, d)) / np.sqrt(d)
  a = np.maximum(v @ x, 0.0)
  y = (rng.standard_normal((k, k)) / np.sqrt(k)) @ a
  aj, yj = jnp.asarray(a), jnp.asarray(y)
  loss = lambda w: 0.5 * jnp.sum((w @ aj - yj) ** 2) / n
  return loss, a, y, n
