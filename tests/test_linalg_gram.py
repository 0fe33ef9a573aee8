"""Gram-form Newton–Schulz with restarts, against the float64 SVD polar
factor and against the direct form (spectral_jax.linalg.ns).

Tolerances. Both forms compute the same iteration; at 8–20 polar_express
steps they stop at their rounding floor (Gaussian inputs: ~5.5 eps in
float32, ~1.3 eps in bfloat16) or at the schedule's own error (logspace
spectra). The restarted Gram form's floor differs from the direct form's by a
few eps: over 25 seeds (float32, 20 steps, Gaussian) its excess was at most
−0.56 eps at 64×256 / 256×64, 1.23 eps at 2×48×160 and 3.24 eps at 32×128
(smaller m, larger excess); bfloat16 at most 0.32 eps (32×128, 4 seeds). So
float32 is asserted within 4 eps and bfloat16 within 2 eps of the direct
form; on the logspace spectrum the Gram form was always *below* the direct
form's error.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import linalg


def ref_polar(g):
  u, _, vh = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vh


def rel_err(a, b):
  a = np.asarray(a, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


def logspace_matrix(rng, shape, decades=3.0):
  # Singular values logspace(0, -decades): Muon's decaying momentum spectra,
  # where the un-restarted Gram form loses accuracy.
  *batch, m, n = shape
  k = min(m, n)
  u, _ = np.linalg.qr(rng.standard_normal((*batch, m, k)))
  v, _ = np.linalg.qr(rng.standard_normal((*batch, n, k)))
  g = (u * np.logspace(0, -decades, k)) @ np.swapaxes(v, -1, -2)
  return g.astype(np.float32)


def _ns(g, steps, dtype, **kw):
  return linalg.newton_schulz(jnp.asarray(g), steps, "polar_express",
                              compute_dtype=dtype, **kw)


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (2, 48, 160)])
@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize("spectrum", ["gaussian", "logspace"])
def test_restarted_gram_keeps_direct_accuracy_fp32(rng, shape, steps,
                                                   spectrum):
  g = (rng.standard_normal(shape).astype(np.float32)
       if spectrum == "gaussian" else logspace_matrix(rng, shape))
  ref = ref_polar(g)
  direct = rel_err(_ns(g, steps, jnp.float32, gram_form=False), ref)
  gram = rel_err(_ns(g, steps, jnp.float32, gram_form=True), ref)
  eps = float(jnp.finfo(jnp.float32).eps)
  assert gram <= direct + 4 * eps, (gram, direct)


@pytest.mark.parametrize("spectrum", ["gaussian", "logspace"])
def test_restarted_gram_keeps_direct_accuracy_bf16(rng, spectrum):
  shape = (64, 256)
  g = (rng.standard_normal(shape).astype(np.float32)
       if spectrum == "gaussian" else logspace_matrix(rng, shape))
  ref = ref_polar(g)
  direct = rel_err(_ns(g, 12, jnp.bfloat16, gram_form=False), ref)
  gram = rel_err(_ns(g, 12, jnp.bfloat16, gram_form=True), ref)
  eps = float(jnp.finfo(jnp.bfloat16).eps)
  assert gram <= direct + 2 * eps, (gram, direct)


def test_without_restarts_the_gram_form_stalls(rng):
  # What the restarts fix (so the tests above can fail): one Gram block of
  # 20 steps on a logspace(0, -3) spectrum stalls at ~2e-3 in float32
  # (measured 1.7e-3 to 3.1e-3) where the direct form reaches ~1e-5, and
  # diverges in bfloat16.
  g = logspace_matrix(rng, (64, 256))
  ref = ref_polar(g)
  direct = rel_err(_ns(g, 20, jnp.float32, gram_form=False), ref)
  one_block = rel_err(_ns(g, 20, jnp.float32, gram_form=True,
                          gram_restart=None), ref)
  assert one_block >= 20 * direct, (one_block, direct)
  bf16 = np.asarray(_ns(g, 20, jnp.bfloat16, gram_form=True,
                        gram_restart=None), np.float64)
  assert not np.all(np.isfinite(bf16)) or rel_err(bf16, ref) > 0.5


def test_restart_every_step_is_the_direct_form(rng):
  # k = 1: each block forms A = X Xᴴ, A², P and P X: the direct step's ops.
  g = rng.standard_normal((3, 24, 80)).astype(np.float32)
  a = _ns(g, 9, jnp.float32, gram_form=True, gram_restart=1)
  b = _ns(g, 9, jnp.float32, gram_form=False)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("restart", [2, 3, 5])
def test_restarted_gram_is_the_same_iteration_fp64(rng, restart):
  # Reordering only: in float64 the restarted Gram form equals the textbook
  # iteration in NumPy to ~1e-13 (κ of these Gaussians is ~5, the rounding
  # carried through Q is eps64·‖Q‖² ≲ 1e-13).
  g = rng.standard_normal((16, 56))
  out = np.asarray(linalg.newton_schulz(jnp.asarray(g), 11, "polar_express",
                                        gram_form=True,
                                        gram_restart=restart))
  x = g / (np.linalg.norm(g) * linalg.SCHEDULES["polar_express"].safety)
  for a, b, c in linalg.schedule_coeffs("polar_express", 11):
    aa = x @ x.T
    x = a * x + (b * aa + c * aa @ aa) @ x
  np.testing.assert_allclose(out, x, rtol=1e-10, atol=1e-12)


def test_auto_restart_choice():
  every = linalg.ns.restart_every
  assert every(5, jnp.float32) == 5      # One block: measured as accurate.
  assert every(6, jnp.complex64) == 6
  assert every(7, jnp.float32) == 2
  assert every(20, jnp.float64) == 2
  assert every(5, jnp.bfloat16) == 2     # 16 bits: always restart.
  assert every(20, jnp.float32, None) == 20
  assert every(20, jnp.float32, 30) == 20


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "always", "2"])
def test_bad_gram_restart_raises_naming_it(bad):
  with pytest.raises(ValueError, match="gram_restart"):
    linalg.newton_schulz(jnp.ones((4, 8)), 5, gram_restart=bad)
  with pytest.raises(ValueError, match="gram_restart"):
    linalg.newton_schulz_flops((4, 8), 5, gram_restart=bad)
