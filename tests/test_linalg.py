"""Tests for spectral_jax.linalg against NumPy float64 references.

Tolerances: the exact polar methods in float32 agree with the float64 SVD
polar factor to ~1e-6 relative (Frobenius) on well-conditioned Gaussian
inputs; we assert 1e-5 (a few ×eps32·√n headroom). bfloat16 inputs carry an
input rounding of ~4e-3 per entry, so their polar factors are compared at
3e-2. ``eigh`` squares the condition number, so it is only checked in float64
or on well-conditioned inputs (it runs in float64 here: conftest enables x64).
"""


import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from spectral_jax import linalg
from references import textbook_newton_schulz


EXACT = ("svd", "qdwh", "eigh")  # "auto" is one of these: tested apart.


def ref_polar(g, rtol=1e-10):
  """U Vᴴ from NumPy's float64 SVD, dropping σ ≤ rtol·σ_1."""
  g = np.asarray(g)
  g = g.astype(np.complex128 if np.iscomplexobj(g) else np.float64)
  u, s, vh = np.linalg.svd(g, full_matrices=False)
  keep = s > rtol * s[..., :1]
  return (u * keep[..., None, :]) @ vh


def rel_err(a, b):
  a = np.asarray(a, np.complex128)
  b = np.asarray(b, np.complex128)
  return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def gaussian(rng, shape, dtype=np.float32):
  return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- polar ---
@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("shape", [(24, 40), (40, 24), (32, 32), (3, 2, 12, 20)])
def test_exact_polar_matches_numpy(rng, method, shape):
  g = gaussian(rng, shape)
  if shape[-1] == shape[-2]:
    # A square Gaussian can be arbitrarily ill-conditioned; shift it so the
    # tolerance below is about the method, not about κ.
    g = g + np.float32(3 * np.sqrt(shape[-1])) * np.eye(shape[-1],
                                                        dtype=np.float32)
  out = linalg.polar(jnp.asarray(g), method)
  assert out.dtype == jnp.float32 and out.shape == g.shape
  assert rel_err(out, ref_polar(g)) <= 1e-5


@pytest.mark.parametrize("method", EXACT)
def test_polar_is_jittable(rng, method):
  g = gaussian(rng, (2, 10, 16))
  out = jax.jit(lambda a: linalg.polar(a, method))(jnp.asarray(g))
  assert rel_err(out, ref_polar(g)) <= 1e-5


@pytest.mark.parametrize("method", ["svd", "eigh"])
@pytest.mark.parametrize("shape", [(20, 30), (30, 20)])
def test_rank_deficient_gives_partial_isometry(rng, method, shape):
  m, n = shape
  r = 5
  g = (rng.standard_normal((m, r)) @ rng.standard_normal((r, n))).astype(
      np.float32)
  out = np.asarray(linalg.polar(jnp.asarray(g), method), np.float64)
  ref = ref_polar(g.astype(np.float64), rtol=1e-6)
  assert rel_err(out, ref) <= 1e-5
  # A partial isometry of rank r: singular values r ones, the rest zeros.
  s = np.linalg.svd(out, compute_uv=False)
  np.testing.assert_allclose(s[:r], 1, atol=1e-5)
  np.testing.assert_allclose(s[r:], 0, atol=1e-5)


@pytest.mark.parametrize("method", EXACT + ("newton_schulz",))
def test_polar_of_zero_is_zero(method):
  out = linalg.polar(jnp.zeros((2, 6, 9), jnp.float32), method)
  assert np.all(np.isfinite(out)) and not np.any(out)


@pytest.mark.parametrize("norm", ["frobenius", "schatten8"])
@pytest.mark.parametrize("gram_form", [False, True])
def test_newton_schulz_of_zero_is_zero(norm, gram_form):
  for eps in (None, 1e-7):
    out = linalg.newton_schulz(jnp.zeros((2, 4, 9), jnp.float32), 3,
                               "polar_express", eps=eps, norm=norm,
                               gram_form=gram_form)
    assert np.all(np.isfinite(out)) and not np.any(out)


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_polar_scale_extremes_fp32(rng, method, scale):
  g = gaussian(rng, (16, 28))
  out = linalg.polar(jnp.asarray(g * np.float32(scale)), method)
  assert np.all(np.isfinite(out))
  assert rel_err(out, ref_polar(g)) <= 1e-5


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_newton_schulz_scale_extremes_fp32(rng, scale):
  g = gaussian(rng, (16, 28))
  ref = linalg.newton_schulz(jnp.asarray(g))
  out = linalg.newton_schulz(jnp.asarray(g * np.float32(scale)))
  assert rel_err(out, ref) <= 1e-5


@pytest.mark.parametrize("method", EXACT)
def test_polar_bf16(rng, method):
  g = gaussian(rng, (24, 40))
  gb = jnp.asarray(g, jnp.bfloat16)
  out = linalg.polar(gb, method)
  assert out.dtype == jnp.bfloat16
  # Input rounding (2^-9 relative) times a modest κ, plus bf16 output.
  assert rel_err(np.asarray(out, np.float64), ref_polar(g)) <= 3e-2


@pytest.mark.parametrize("method", EXACT)
def test_polar_complex64(rng, method):
  g = (rng.standard_normal((12, 20)) + 1j * rng.standard_normal((12, 20)))
  g = g.astype(np.complex64)
  out = linalg.polar(jnp.asarray(g), method)
  assert out.dtype == jnp.complex64
  assert rel_err(out, ref_polar(g)) <= 1e-5


def test_eigh_float64_agrees_with_svd_to_1e10(rng):
  # SPEC §5 A.2: the authors' (GGᵀ)^{-1/2}G route and the SVD agree in fp64.
  g = rng.standard_normal((30, 50))
  a = linalg.polar(jnp.asarray(g), "eigh")
  b = linalg.polar(jnp.asarray(g), "svd")
  assert a.dtype == jnp.float64
  assert rel_err(a, b) <= 1e-10
  assert rel_err(a, ref_polar(g)) <= 1e-10


def test_auto_is_exact(rng):
  g = gaussian(rng, (3, 20, 64))
  assert rel_err(linalg.polar(jnp.asarray(g), "auto"), ref_polar(g)) <= 1e-5
  tiny = linalg.polar(jnp.asarray(g * np.float32(1e-30)), "auto")
  assert rel_err(tiny, ref_polar(g)) <= 1e-5
  assert not np.any(linalg.polar(jnp.zeros((4, 6), jnp.float32), "auto"))


# --------------------------------------------------------- Newton–Schulz ---
def _ns_band(coeffs, steps, lo, safety=1.0, n=20001):
  """Image of [lo, 1/safety] under the composed scalar polynomials."""
  x = np.concatenate([np.geomspace(lo, 1.0, n), np.linspace(lo, 1.0, n)])
  x = x / safety
  for a, b, c in linalg.schedule_coeffs(coeffs, steps):
    x = a * x + b * x**3 + c * x**5
  return x.min(), x.max()


@pytest.mark.parametrize("gram_form", [False, True])
def test_jordan_singular_values_in_promised_band(rng, gram_form):
  m, n = 40, 96
  g = rng.standard_normal((m, n)) * np.logspace(0, -1.5, m)[:, None]
  g = g.astype(np.float32)
  s_in = np.linalg.svd(g.astype(np.float64), compute_uv=False)
  lo = s_in[-1] / np.linalg.norm(g.astype(np.float64))
  band_lo, band_hi = _ns_band("jordan", 5, lo)
  out = linalg.newton_schulz(jnp.asarray(g), 5, "jordan", gram_form=gram_form)
  s_out = np.linalg.svd(np.asarray(out, np.float64), compute_uv=False)
  # fp32 rounding in 5 steps moves σ by far less than 1e-3.
  assert s_out.max() <= band_hi + 1e-3 and s_out.min() >= band_lo - 1e-3
  assert band_hi < 1.25  # SPEC §5 A.2: NS5 outputs are ≤ ~1.21.


def test_newton_schulz_preserves_singular_vectors(rng):
  m, n = 30, 50
  u, _ = np.linalg.qr(rng.standard_normal((m, m)))
  v, _ = np.linalg.qr(rng.standard_normal((n, m)))
  s = np.linspace(1.0, 0.2, m)  # Distinct, so the vectors are defined.
  g = (u * s) @ v.T
  out = np.asarray(linalg.newton_schulz(jnp.asarray(g), 5, "jordan"))
  # Uᵀ out V must be diagonal, with diag = p(σ / ‖G‖_F) (scalar polynomial).
  core = u.T @ out @ v
  expect = s / np.linalg.norm(g)
  for a, b, c in linalg.schedule_coeffs("jordan", 5):
    expect = a * expect + b * expect**3 + c * expect**5
  np.testing.assert_allclose(core, np.diag(expect), atol=1e-10)


def test_polar_express_beats_jordan_at_equal_steps(rng):
  g = gaussian(rng, (256, 512))
  ref = ref_polar(g)
  for steps in (5,):
    e_pe = rel_err(linalg.newton_schulz(jnp.asarray(g), steps,
                                        "polar_express"), ref)
    e_j = rel_err(linalg.newton_schulz(jnp.asarray(g), steps, "jordan"), ref)
    assert e_pe < e_j, (steps, e_pe, e_j)


def test_cubic_converges_with_many_steps(rng):
  g = gaussian(rng, (20, 30))
  # Gaussian 20×30: κ ≈ (√30+√20)/(√30−√20) ≈ 10, σ_min/‖G‖_F ≈ 0.04, so
  # ~7 linear steps then quadratic convergence: 60 steps is ample.
  out = linalg.newton_schulz(jnp.asarray(g.astype(np.float64)), 60, "cubic")
  assert rel_err(out, ref_polar(g)) <= 1e-8


def test_custom_array_schedule(rng):
  g = gaussian(rng, (12, 20)).astype(np.float64)
  rows = np.array([[3.0, -3.2, 1.2], [2.0, -1.5, 0.5], [1.5, -0.5, 0.0]])
  out = np.asarray(linalg.newton_schulz(jnp.asarray(g), coeffs=rows))
  x = g / np.linalg.norm(g)
  for a, b, c in rows:
    aa = x @ x.T
    x = a * x + (b * aa + c * aa @ aa) @ x
  np.testing.assert_allclose(out, x, rtol=1e-10, atol=1e-12)
  assert linalg.schedule_coeffs(rows).shape == (3, 3)
  assert linalg.schedule_coeffs(rows, 5).shape == (5, 3)


@pytest.mark.parametrize("gram_form", [False, True])
@pytest.mark.parametrize("coeffs", ["jordan", "dion"])
def test_newton_schulz_batched_equals_per_slice(rng, coeffs, gram_form):
  g = gaussian(rng, (3, 2, 10, 24))
  fn = jax.jit(lambda x: linalg.newton_schulz(x, coeffs=coeffs,
                                              gram_form=gram_form))
  out = np.asarray(fn(jnp.asarray(g)))
  for i in range(3):
    for j in range(2):
      one = fn(jnp.asarray(g[i, j]))
      np.testing.assert_allclose(out[i, j], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["frobenius", "schatten8"])
@pytest.mark.parametrize("coeffs", ["jordan", "polar_express", "cubic"])
def test_gram_form_equals_direct_form(rng, coeffs, norm):
  # Same iteration, reordered: agreement to fp32 rounding (× the growth of
  # Q_k on small directions), far below the method's own error (≥ 1e-2).
  g = gaussian(rng, (32, 128))
  a = linalg.newton_schulz(jnp.asarray(g), 5, coeffs, norm=norm,
                           gram_form=False)
  b = linalg.newton_schulz(jnp.asarray(g), 5, coeffs, norm=norm,
                           gram_form=True)
  assert rel_err(b, a) <= 1e-4
  # And it is no less accurate against the exact polar factor.
  ref = ref_polar(g)
  assert rel_err(b, ref) <= rel_err(a, ref) + 1e-4


@pytest.mark.parametrize("gram_form", [False, True])
def test_newton_schulz_complex(rng, gram_form):
  g = rng.standard_normal((10, 24)) + 1j * rng.standard_normal((10, 24))
  rows = linalg.schedule_coeffs("polar_express", 8)
  x = g / (np.linalg.norm(g) * linalg.SCHEDULES["polar_express"].safety)
  for a, b, c in rows:  # The same iteration in NumPy complex128.
    aa = x @ x.conj().T
    x = a * x + (b * aa + c * aa @ aa) @ x
  out = linalg.newton_schulz(jnp.asarray(g.astype(np.complex64)), 8,
                             "polar_express", gram_form=gram_form)
  assert out.dtype == jnp.complex64
  assert rel_err(out, x) <= 1e-5
  assert rel_err(out, ref_polar(g)) <= 1e-4  # 8 steps: converged (κ ≈ 5).


def test_newton_schulz_tall_is_transpose_of_wide(rng):
  g = gaussian(rng, (40, 16))
  a = linalg.newton_schulz(jnp.asarray(g))
  b = linalg.newton_schulz(jnp.asarray(g.T))
  np.testing.assert_allclose(a, np.asarray(b).T, rtol=1e-6, atol=1e-6)


def test_schatten8_bound_is_tighter_and_valid(rng):
  # ‖G‖_{S8} = ‖(GGᵀ)²‖_F^{1/4} lies between σ_1 and ‖G‖_F.
  g = rng.standard_normal((30, 70))
  s = np.linalg.svd(g, compute_uv=False)
  s8 = np.linalg.norm((g @ g.T) @ (g @ g.T)) ** 0.25
  assert s[0] <= s8 * (1 + 1e-12) and s8 <= np.linalg.norm(g)
  # With it, the cubic converges in fewer steps than with Frobenius (at 8
  # steps, before both reach the float64 floor: typically 1e-11 vs 5e-3).
  ref = ref_polar(g)
  e8 = rel_err(linalg.newton_schulz(jnp.asarray(g), 8, "cubic",
                                    norm="schatten8"), ref)
  ef = rel_err(linalg.newton_schulz(jnp.asarray(g), 8, "cubic"), ref)
  assert e8 < 0.1 * ef


@pytest.mark.parametrize("sched", ["jordan", "polar_express"])
def test_newton_schulz_bf16_compute(rng, sched):
  # A true bf16 iteration is about 6-9% off the float32 one (measured, 20
  # seeds, 24x64: median 6.0%, max 7.5% for jordan, 8.7% for polar_express;
  # optax's own bf16 iteration: median 6.8%, max 7.4%). The yardstick is the
  # textbook bf16 iteration on the same input: ours may not be worse than
  # 1.5x its error. (Whether every product IS bf16 is read off the jaxpr in
  # test_newton_schulz_compute_dtype_is_every_dot.)
  g = gaussian(rng, (24, 64)).astype(np.float64)
  a = linalg.newton_schulz(jnp.asarray(g, jnp.float32), 5, sched)
  ref = textbook_newton_schulz(g, linalg.schedule_coeffs(sched, 5),
                               linalg.resolve_schedule(sched).safety,
                               jnp.bfloat16)
  limit = 1.5 * rel_err(ref, a)
  b = linalg.newton_schulz(jnp.asarray(g, jnp.float32), 5, sched,
                           compute_dtype=jnp.bfloat16)
  assert b.dtype == jnp.float32
  assert rel_err(b, a) <= limit
  c = linalg.newton_schulz(jnp.asarray(g, jnp.bfloat16), 5, sched)
  assert c.dtype == jnp.bfloat16
  assert rel_err(np.asarray(c, np.float64), a) <= limit


def _dot_dtypes(jaxpr) -> set:
  """Operand dtypes of every dot_general in ``jaxpr`` and its sub-jaxprs."""
  out = set()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      out |= {str(v.aval.dtype) for v in eqn.invars}
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      out |= _dot_dtypes(sub)
  return out


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("kw", [
    dict(norm="frobenius"), dict(norm="spectral"), dict(norm="aol"),
    dict(norm="schatten4"), dict(norm="schatten8"),
    dict(norm="frobenius", gram_form=True),
    dict(norm="schatten8", gram_form=True),
], ids=lambda kw: "-".join(map(str, kw.values())))
@pytest.mark.parametrize("in_dtype", [jnp.float32, jnp.bfloat16])
def test_newton_schulz_compute_dtype_is_every_dot(kw, in_dtype, x64):
  # With compute_dtype=bf16 every matrix product of the iteration is bf16,
  # whatever the input dtype and with x64 on: float64 schedule constants must
  # not promote it (they did, before every product after the first).
  g = jnp.ones((16, 40), in_dtype)
  for sched in ("jordan", "polar_express", "dion"):
    with jax.enable_x64(x64):
      jaxpr = jax.make_jaxpr(lambda x: linalg.newton_schulz(
          x, 5, sched, compute_dtype=jnp.bfloat16, **kw))(g)
    assert _dot_dtypes(jaxpr.jaxpr) == {"bfloat16"}, (sched, kw)


@pytest.mark.parametrize("gram_form", [None, False])
def test_newton_schulz_bf16_temp_memory_at_most_float32(gram_form):
  # Compiled temp memory of one wide matrix: bfloat16 may not cost more than
  # float32. (On CPU it cannot cost less: XLA computes bfloat16 products in
  # float32, converting each operand to a float32 copy.) It did cost more:
  # with a constant schedule, a·I was computed once and held through the
  # whole call in 16 bits (here 128 KiB over float32's 2 MiB).
  def temp(dtype):
    x = jax.ShapeDtypeStruct((1, 256, 1024), dtype)
    fn = lambda y: linalg.newton_schulz(y, 5, "jordan", gram_form=gram_form)
    return jax.jit(fn).lower(x).compile().memory_analysis().temp_size_in_bytes

  assert temp(jnp.bfloat16) <= temp(jnp.float32)


def test_newton_schulz_traced_steps_and_table_keep_compute_dtype():
  g = jnp.ones((16, 40), jnp.float32)
  table = jnp.asarray(linalg.schedule_coeffs("dion", 5), jnp.float32)
  for x64 in (False, True):
    with jax.enable_x64(x64):
      jaxpr = jax.make_jaxpr(lambda x, k, t: linalg.newton_schulz(
          x, k, t, compute_dtype=jnp.bfloat16))(g, 5, table)
    assert _dot_dtypes(jaxpr.jaxpr) == {"bfloat16"}


# ------------------------------------------------------ spectral summaries ---
def _np_sv(g):
  return np.linalg.svd(np.asarray(g, np.float64), compute_uv=False)


def test_nuclear_norm_and_ranks_match_numpy(rng):
  g = rng.standard_normal((4, 15, 25))
  s = _np_sv(g)
  np.testing.assert_allclose(linalg.nuclear_norm(jnp.asarray(g)),
                             s.sum(-1), rtol=1e-10)
  np.testing.assert_allclose(linalg.nuclear_rank(jnp.asarray(g)),
                             s.sum(-1)**2 / (s**2).sum(-1), rtol=1e-10)
  np.testing.assert_allclose(linalg.stable_rank(jnp.asarray(g)),
                             (s**2).sum(-1) / s[:, 0]**2, rtol=1e-10)


def test_rank_bounds_and_rank_one(rng):
  r = 4
  g = rng.standard_normal((20, r)) @ rng.standard_normal((r, 30))
  for fn in (linalg.nuclear_rank, linalg.stable_rank):
    v = float(fn(jnp.asarray(g)))
    assert 1 - 1e-9 <= v <= r + 1e-9
  one = np.outer(rng.standard_normal(12), rng.standard_normal(7))
  for fn in (linalg.nuclear_rank, linalg.stable_rank):
    np.testing.assert_allclose(fn(jnp.asarray(one)), 1.0, rtol=1e-8)
  # st ≤ nr always (SPEC §1).
  assert linalg.stable_rank(jnp.asarray(g)) <= linalg.nuclear_rank(
      jnp.asarray(g)) + 1e-9


@pytest.mark.parametrize("fn", [linalg.nuclear_rank, linalg.stable_rank,
                                linalg.nuclear_norm])
def test_ranks_of_zero_are_zero(fn):
  v = fn(jnp.zeros((2, 5, 8), jnp.float32))
  assert np.all(np.isfinite(v)) and not np.any(v)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_ranks_scale_invariant_fp32(rng, scale):
  g = gaussian(rng, (16, 24))
  s = _np_sv(g)
  for fn, ref in ((linalg.stable_rank, (s**2).sum() / s[0]**2),
                  (linalg.nuclear_rank, s.sum()**2 / (s**2).sum())):
    np.testing.assert_allclose(fn(jnp.asarray(g * np.float32(scale))), ref,
                               rtol=1e-5)


def test_gaussian_nuclear_rank_near_quarter_circle(rng):
  # SPEC §5 A.1: nr ≈ (8/(3π))²·100 ≈ 72 for a Gaussian 100×100 (averaged
  # value 71.9). One draw fluctuates by about ±1; the band is wide.
  g = rng.standard_normal((100, 100))
  nr = float(linalg.nuclear_rank(jnp.asarray(g)))
  assert abs(nr - (8 / (3 * np.pi))**2 * 100) < 4


def test_bf16_ranks(rng):
  g = gaussian(rng, (16, 24))
  s = _np_sv(g)
  np.testing.assert_allclose(
      linalg.stable_rank(jnp.asarray(g, jnp.bfloat16)),
      (s**2).sum() / s[0]**2, rtol=3e-2)


@pytest.mark.parametrize("power", [1, 2])
def test_spectral_entropy_matches_numpy(rng, power):
  g = rng.standard_normal((3, 10, 18))
  p = _np_sv(g) ** power
  p = p / p.sum(-1, keepdims=True)
  h = -(p * np.log(p)).sum(-1)
  np.testing.assert_allclose(
      linalg.spectral_entropy(jnp.asarray(g), power, normalized=False), h,
      rtol=1e-10)
  np.testing.assert_allclose(
      linalg.spectral_entropy(jnp.asarray(g), power), h / np.log(10),
      rtol=1e-10)
  z = linalg.spectral_entropy(jnp.zeros((4, 6)), power)
  assert np.isfinite(z) and z == 0


def test_gram_chunked_equals_unchunked(rng):
  a = rng.standard_normal((2, 8, 103))
  ref = np.einsum("bik,bjk->bij", a, a)
  for chunk in (None, 1, 10, 103, 500):
    np.testing.assert_allclose(linalg.gram(jnp.asarray(a), chunk), ref,
                               rtol=1e-10, atol=1e-10)
  c = a[0] + 1j * a[1]
  np.testing.assert_allclose(linalg.gram(jnp.asarray(c), 7), c @ c.conj().T,
                             rtol=1e-10, atol=1e-10)


def test_stable_rank_from_gram(rng):
  a = rng.standard_normal((3, 9, 40))
  g = linalg.gram(jnp.asarray(a), 16)
  np.testing.assert_allclose(linalg.stable_rank_from_gram(g),
                             linalg.stable_rank(jnp.asarray(a)), rtol=1e-10)
  assert float(linalg.stable_rank_from_gram(jnp.zeros((5, 5)))) == 0


# ----------------------------------------------------------- bad input ---
@pytest.mark.parametrize("fn", [
    lambda x: linalg.polar(x), linalg.newton_schulz, linalg.nuclear_rank,
    linalg.stable_rank, linalg.singular_values, linalg.spectral_entropy])
def test_bad_x_raises_naming_x(fn):
  with pytest.raises(ValueError, match=r"\bx\b.*ndim"):
    fn(jnp.ones((5,), jnp.float32))
  with pytest.raises(ValueError, match=r"x\.dtype"):
    fn(jnp.ones((3, 4), jnp.int32))


def test_bad_arguments_raise_naming_them():
  x = jnp.ones((3, 4), jnp.float32)
  with pytest.raises(ValueError, match="method='nope'"):
    linalg.polar(x, "nope")
  with pytest.raises(ValueError, match="coeffs='nope'"):
    linalg.newton_schulz(x, coeffs="nope")
  with pytest.raises(ValueError, match="coeffs must have shape"):
    linalg.newton_schulz(x, coeffs=np.ones((2, 4)))
  for bad in (0, -1, True, 2.0):
    with pytest.raises(ValueError, match="steps"):
      linalg.newton_schulz(x, steps=bad)
  with pytest.raises(ValueError, match="norm="):
    linalg.newton_schulz(x, norm="schatten")  # optax's name: transforms maps it
  with pytest.raises(ValueError, match="power"):
    linalg.spectral_entropy(x, power=True)
  with pytest.raises(ValueError, match=r"\ba\b.*ndim"):
    linalg.gram(jnp.ones((5,), jnp.float32))
  with pytest.raises(ValueError, match=r"\bg\b.*ndim"):
    linalg.stable_rank_from_gram(jnp.ones((5,), jnp.float32))
  with pytest.raises(ValueError, match="chunk_size"):
    linalg.gram(x, chunk_size=0)
  with pytest.raises(ValueError, match="newton_schulz' only"):
    linalg.polar(x, "svd", steps=3)


# ------------------------------------------------ perf regression guard ---
def _sub_jaxprs(values):
  for v in values:
    if isinstance(v, (list, tuple)):
      yield from _sub_jaxprs(v)
    elif hasattr(v, "eqns"):
      yield v.jaxpr if hasattr(v, "jaxpr") else v


def _dot_flops(fn, *args):
  """(number of dot_general ops, their real FLOPs) in fn's jaxpr."""
  jaxpr = jax.make_jaxpr(fn)(*args)
  count, flops = 0, 0

  def visit(jx):
    nonlocal count, flops
    for eqn in jx.eqns:
      if eqn.primitive.name == "dot_general":
        (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
        lhs, rhs = (v.aval.shape for v in eqn.invars)
        k = int(np.prod([lhs[i] for i in lc]))
        out = int(np.prod(eqn.outvars[0].aval.shape))
        count += 1
        flops += 2 * out * k
      for sub in _sub_jaxprs(eqn.params.values()):
        visit(sub)

  visit(jaxpr.jaxpr)
  return count, flops


@pytest.mark.parametrize("shape,gram_form,steps,n_dots", [
    ((64, 256), False, 5, 15),   # 3 per quintic step.
    ((64, 256), True, 5, 19),    # 2 + (4·5 − 3).
    ((256, 64), True, 5, 19),    # Tall: transposed, same count.
    ((2, 48, 48), False, 5, 15),
    ((2, 48, 48), None, 5, 15),   # Square: direct form by default.
    # > 6 steps: Gram form restarted every 2 steps by default (issue 17; was
    # the direct form, 24): 4 blocks × (2 + (4·2 − 3)).
    ((64, 256), None, 8, 28),
    ((64, 256), None, 6, 23),     # Wide, <= 6 steps: Gram form.
])
def test_newton_schulz_dot_count_and_flops(shape, gram_form, steps, n_dots):
  x = jnp.ones(shape, jnp.float32)
  count, flops = _dot_flops(
      lambda a: linalg.newton_schulz(a, steps, "polar_express",
                                     gram_form=gram_form), x)
  assert count == n_dots
  assert flops == linalg.newton_schulz_flops(shape, steps,
                                             gram_form=gram_form,
                                             coeffs="polar_express")


@pytest.mark.parametrize("shape,steps,restart,n_dots", [
    # A block of j steps: A, Q X and 4j − 3 m×m products: 4·steps − blocks.
    ((64, 256), 8, 2, 28),      # 4 blocks.
    ((64, 256), 20, 3, 73),     # 7 blocks (the last one of 2 steps).
    ((64, 256), 20, None, 79),  # One block.
    ((64, 256), 5, "auto", 19),  # <= 6 steps in float32: one block.
    ((64, 256), 12, "auto", 42),  # Every 2 steps: 6 blocks.
    ((256, 64), 9, 1, 27),      # k = 1 is the direct form: 3 per step.
    ((2, 40, 120), 7, 4, 26),   # Blocks 4 + 3, batched.
])
def test_gram_restart_dot_count_and_flops(shape, steps, restart, n_dots):
  x = jnp.ones(shape, jnp.float32)
  count, flops = _dot_flops(
      lambda a: linalg.newton_schulz(a, steps, "polar_express",
                                     gram_form=True, gram_restart=restart), x)
  assert count == n_dots
  assert flops == linalg.newton_schulz_flops(shape, steps, gram_form=True,
                                             coeffs="polar_express",
                                             gram_restart=restart)


@pytest.mark.parametrize("shape,steps,restart", [
    ((64, 256), 8, 2), ((64, 256), 20, 3), ((2, 96, 384), 12, "auto"),
    ((256, 64), 5, None), ((128, 128), 8, "auto")])
@pytest.mark.parametrize("gram_form", [False, None])
def test_flops_match_compiled_cost_analysis(shape, steps, restart, gram_form):
  # XLA counts the elementwise work too: the start's passes over X (abs,
  # max, power-of-two scalings, squares, sums, the divide; the scale-safe
  # norm does several: <= 32 per entry) and the m×m polynomial
  # combinations (<= 8 per entry per step). Ours counts matmuls only.
  *batch, m, n = shape
  m, n = min(m, n), max(m, n)
  fn = jax.jit(lambda a: linalg.newton_schulz(
      a, steps, "polar_express", gram_form=gram_form, gram_restart=restart))
  cost = fn.lower(jnp.ones(shape, jnp.float32)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ours = linalg.newton_schulz_flops(shape, steps, coeffs="polar_express",
                                    gram_form=gram_form, gram_restart=restart)
  nb = int(np.prod(batch))
  assert 0 <= cost["flops"] - ours <= nb * (32 * m * n + 8 * m * m * steps)


def test_auto_form_uses_fewer_flops_for_wide(rng):
  # Guard: the default picks the Gram form for 256×1024 and it is cheaper.
  del rng
  shape = (256, 1024)
  x = jnp.ones(shape, jnp.float32)
  _, auto = _dot_flops(lambda a: linalg.newton_schulz(a, 5), x)
  _, direct = _dot_flops(lambda a: linalg.newton_schulz(a, 5,
                                                        gram_form=False), x)
  assert auto <= 0.6 * direct


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (2, 3, 50, 30)])
def test_operator_norm_sq_matches_svd_on_gapped_matrices(rng, shape):
  # ReLU features have a dominant mean direction: the spectral gap the power
  # iteration is documented for. float64 in, so round-off is ~1e-12.
  a = np.maximum(rng.standard_normal(shape), 0.0)
  ref = np.linalg.svd(a, compute_uv=False)[..., 0] ** 2
  got = np.asarray(linalg.operator_norm_sq(jnp.asarray(a)))
  np.testing.assert_allclose(got, ref, rtol=1e-10)
  assert float(linalg.operator_norm_sq(jnp.zeros((4, 3)))) == 0.0
  with pytest.raises(ValueError, match="iters"):
    linalg.operator_norm_sq(jnp.asarray(a), iters=0)


@pytest.mark.parametrize("scale", [1e-33, 1e-30, 5e37, 7.5e37])
@pytest.mark.parametrize("method", ["svd", "eigh", "qdwh", "newton_schulz"])
def test_float32_extremes_of_scale(rng, method, scale):
  # Issue 18 item 7: polar(G·5e37) was all zeros and nuclear_rank(G·1e38)
  # NaN: XLA on CPU computes x / n as x · (1/n) and flushes the subnormal
  # 1/n to zero. Inputs are built in NumPy (a jnp multiply would flush too).
  g = rng.standard_normal((12, 7))
  g = np.where(g < 0, -1, 1) * np.maximum(abs(g), 1e-2)  # no entry near 0
  x = jnp.asarray((g * scale).astype(np.float32))
  # Normal float32 numbers only: subnormal entries would be flushed to zero
  # by XLA, which is a different input.
  tiny = np.finfo(np.float32).tiny
  assert np.all(np.isfinite(np.asarray(x))) and np.all(abs(np.asarray(x)) >= tiny)
  ref = ref_polar(g)
  tol = {"newton_schulz": None, "eigh": 1e-3}.get(method, 1e-5)
  p = np.asarray(linalg.polar(x, method), np.float64)
  if tol is None:  # Jordan's quintic: compare with the same at unit scale.
    unit = linalg.polar(jnp.asarray(g, jnp.float32), method)
    assert rel_err(p, unit) <= 1e-5
  else:
    assert rel_err(p, ref) <= tol
  s = np.linalg.svd(g, compute_uv=False)
  np.testing.assert_allclose(float(linalg.stable_rank(x)),
                             np.sum(s**2) / s[0]**2, rtol=1e-5)
  np.testing.assert_allclose(float(linalg.nuclear_rank(x)),
                             np.sum(s)**2 / np.sum(s**2), rtol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (4, 4)])
@pytest.mark.parametrize("method, complex_", [
    ("svd", False), ("eigh", False), ("qdwh", False), ("svd", True)])
def test_polar_derivative_matches_finite_differences(rng, shape, method,
                                                     complex_):
  # float64 central differences (step 1e-6: error ~1e-10 for these sizes).
  draw = lambda: rng.standard_normal(shape) + (
      1j * rng.standard_normal(shape) if complex_ else 0)
  x, dx = jnp.asarray(draw()), jnp.asarray(draw())
  _, tangent = jax.jvp(lambda y: linalg.polar(y, method), (x,), (dx,))
  h = 1e-6
  fd = (linalg.polar(x + h * dx, method) - linalg.polar(x - h * dx, method))
  np.testing.assert_allclose(np.asarray(tangent), np.asarray(fd) / (2 * h),
                             atol=1e-7)


@pytest.mark.parametrize("method", ["svd", "eigh", "qdwh"])
def test_polar_derivative_is_finite_at_repeated_singular_values(rng, method):
  # Issue 18 item 7: grad through the SVD was NaN at the identity. At X = I,
  # dP = (dX - dXᵀ)/2: the skew part.
  dx = rng.standard_normal((4, 4))
  _, tangent = jax.jvp(lambda y: linalg.polar(y, method),
                       (jnp.eye(4, dtype=jnp.float64),), (jnp.asarray(dx),))
  np.testing.assert_allclose(np.asarray(tangent), (dx - dx.T) / 2, atol=1e-12)
  grad = jax.grad(lambda y: jnp.sum(linalg.polar(y, method) ** 3))(
      jnp.eye(4, dtype=jnp.float64) * 2.0)
  assert np.all(np.isfinite(np.asarray(grad)))
