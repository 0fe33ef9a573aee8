"""Tests for spectral_jax.transforms.

References: NumPy float64 SVD for exact polar factors and nuclear norms (x64
is on in this session, so float64 inputs give ~1e-10 agreement), and optax's
own implementation for the Newton–Schulz semantics (float32; the two differ
only in summation order, measured ≤ 4e-6 relative after five steps, so
3e-5 · max|u| is used).
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax.contrib import _muon as optax_muon  # reference only

import spectral_jax
from spectral_jax import MuonDimensionNumbers as DN
from spectral_jax import labels
from spectral_jax import optax_compat
from spectral_jax import transforms
from references import textbook_newton_schulz

_RTOL32 = 3e-5


def _randn(rng, shape, dtype=jnp.float32):
  if jnp.issubdtype(dtype, jnp.complexfloating):
    return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape),
                       dtype)
  return jnp.asarray(rng.normal(size=shape), dtype)


def _close(a, b, rtol=_RTOL32, msg=""):
  scale = float(np.max(np.abs(np.asarray(b)))) or 1.0
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=rtol * scale,
                             rtol=0, err_msg=msg)


def _np_polar(g):
  u, s, vh = np.linalg.svd(np.asarray(g), full_matrices=False)
  return u @ vh, s.sum(axis=-1)


# ---------------------------------------------------------------- reshape --
@pytest.mark.parametrize("shape, dims", [
    ((2, 3), DN(0, 1)),
    ((2, 3, 4), DN(0, 2)),
    ((2, 3, 4), DN(-3, -1)),
    ((2, 3, 4, 5), DN(2, 3)),
    ((2, 3, 4, 5), DN(2, (0, 3))),
    ((2, 3, 4, 5), DN((3, 0), 1)),
])
def test_compute_muon_reshape_matches_optax(rng, shape, dims):
  x = _randn(rng, shape)
  ours, our_inv = labels.compute_muon_reshape(x, dims)
  ref, _ = optax_muon._compute_muon_reshape(x, dims)  # pylint: disable=protected-access
  np.testing.assert_array_equal(ours(x), ref(x))
  np.testing.assert_array_equal(our_inv(ours(x)), x)


@pytest.mark.parametrize("shape, dims, match", [
    ((4,), DN(0, 1), "rank"),
    ((3, 4), DN(0, 2), "out of range"),
    ((3, 4, 5), DN(0, (0, 2)), "disjoint"),
    ((3, 4, 5), DN((), 1), "non-empty"),
    ((3, 4, 5), None, "2-D"),
])
def test_bad_dimension_numbers_name_the_path(shape, dims, match):
  tx = spectral_jax.scale_by_polar(weight_dimension_numbers={"a": DN(),
                                                             "blk": dims})
  g = {"a": jnp.ones((2, 3)), "blk": jnp.ones(shape)}
  with pytest.raises(ValueError, match=match) as info:
    tx.update(g, tx.init(g))
  assert " at blk" in str(info.value)  # labels.path_name: keys joined by '/'


# --------------------------------------------- Newton–Schulz, optax semantics
@pytest.mark.parametrize("preconditioning",
                         ["frobenius", "spectral", "aol", "schatten"])
def test_orthogonalize_matches_optax(rng, preconditioning):
  coeffs = jnp.asarray((3.4445, -4.7750, 2.0315), jnp.float32)
  table = jnp.asarray(optax_muon._DION_NS_COEFFS, jnp.float32)  # pylint: disable=protected-access
  cases = [(_randn(rng, (6, 10)), None, coeffs, 5),
           (_randn(rng, (10, 6)), None, table, 5),
           (_randn(rng, (3, 4, 2, 5)), DN((0, 3), 1), coeffs, 3)]
  if preconditioning in ("frobenius", "aol"):
    # (optax's complex Schatten step differs by design: see below.)
    cases.append((_randn(rng, (5, 7), jnp.complex64), None, coeffs, 5))
  if preconditioning != "frobenius":
    del cases[2]  # The reshape path does not depend on preconditioning.
  for x, dims, c, steps in cases:
    ours = transforms.orthogonalize_via_newton_schulz(
        x, c, steps, preconditioning, 1e-8, dims)
    ref = optax_muon.orthogonalize_via_newton_schulz(
        x, c, steps, preconditioning, 1e-8, dims)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    _close(ours, ref, msg=f"{x.shape} {x.dtype}")
  # Traced coefficients (under jit) give the same result as static ones.
  x = cases[0][0]
  f = jax.jit(lambda y, c: transforms.orthogonalize_via_newton_schulz(
      y, c, 5, preconditioning))
  _close(f(x, coeffs), transforms.orthogonalize_via_newton_schulz(
      x, coeffs, 5, preconditioning))


def test_complex_schatten_is_unitarily_equivariant(rng):
  # A function of the singular values commutes with unitaries: O(QG) = Q O(G).
  # (optax 0.2.8 uses X Xᵀ in this step and does not satisfy this.)
  g = _randn(rng, (5, 8), jnp.complex128)
  q, _ = np.linalg.qr(np.asarray(_randn(rng, (5, 5), jnp.complex128)))
  f = lambda x: transforms.orthogonalize_via_newton_schulz(
      x, jnp.asarray((3.4445, -4.7750, 2.0315)), 5, "schatten")
  np.testing.assert_allclose(f(jnp.asarray(q) @ g), q @ np.asarray(f(g)),
                             atol=1e-10)


def test_scale_by_muon_matches_optax_with_dimension_numbers(rng):
  params = {"w": _randn(rng, (3, 6, 4)), "v": _randn(rng, (4, 5, 2))}
  dims = {"w": DN(1, (0, 2)), "v": DN((0, 2), 1)}
  for kw in ({}, {"adaptive": True, "nesterov": False,
                 "preconditioning": "aol"}):
    ours = spectral_jax.scale_by_muon(weight_dimension_numbers=dims, **kw)
    ref = optax.contrib.scale_by_muon(weight_dimension_numbers=dims, **kw)
    s_o, s_r = ours.init(params), ref.init(params)
    assert jax.tree.structure(s_o) == jax.tree.structure(s_r)
    up_o, up_r = jax.jit(ours.update), jax.jit(ref.update)
    for _ in range(2):
      g = jax.tree.map(lambda x: _randn(rng, x.shape), params)
      u_o, s_o = up_o(g, s_o)
      u_r, s_r = up_r(g, s_r)
      for k in params:
        _close(u_o[k], u_r[k], msg=f"{kw} {k}")


def test_scale_by_shape_matches_optax(rng):
  u = {"a": _randn(rng, (4, 9)), "b": _randn(rng, (9, 4)),
       "c": _randn(rng, (2, 3, 5))}
  dims = {"a": DN(), "b": DN(), "c": DN((0, 1), 2)}
  for rms in (None, 0.2):
    ours, _ = spectral_jax.scale_by_shape(dims, rms).update(u, None)
    ref, _ = optax.contrib._muon.scale_by_shape(dims, rms).update(u, None)  # pylint: disable=protected-access
    for k in u:
      np.testing.assert_allclose(ours[k], ref[k], rtol=1e-6)


def test_traced_ns_steps_equal_static(rng):
  # optax.inject_hyperparams injects ns_steps: under jit it is a tracer.
  g = {"w": _randn(rng, (6, 9)), "t": _randn(rng, (9, 4))}
  for kw in ({}, {"preconditioning": "aol", "ns_coeffs": "polar_express"}):
    static = spectral_jax.scale_by_muon(ns_steps=4, **kw)
    want, _ = static.update(g, static.init(g))

    @jax.jit
    def traced(g, n, kw=kw):
      tx = spectral_jax.scale_by_muon(ns_steps=n, **kw)
      return tx.update(g, static.init(g))[0]

    got = traced(g, jnp.asarray(4))
    for k in g:
      _close(got[k], want[k], msg=f"{kw} {k}")


# ------------------------------------------------------------- batching ---
@pytest.mark.parametrize("kw", [
    {}, {"preconditioning": "aol"}, {"polar_method": "svd"},
    {"preconditioning": "spectral"},
    {"ns_coeffs": "polar_express"}],
                         ids=lambda kw: ",".join(kw.values()) or "default")
def test_grouped_equals_per_leaf(rng, kw):
  # Three (8, 12) leaves and a stacked (2, 8, 12) leaf read per layer: one
  # batched call of 5 matrices vs four calls.
  g = {"a": _randn(rng, (8, 12)), "b": _randn(rng, (8, 12)),
       "c": _randn(rng, (12, 8)), "s": _randn(rng, (2, 8, 12)),
       "t": _randn(rng, (8, 12))}
  dims = {"a": DN(), "b": DN(), "c": DN(1, 0), "s": DN(1, 2), "t": DN()}
  outs = []
  for group in (True, False):
    tx = spectral_jax.scale_by_muon(weight_dimension_numbers=dims,
                                    group_equal_shapes=group, **kw)
    outs.append(jax.jit(tx.update)(g, tx.init(g))[0])
  # Same per-matrix arithmetic; only the batch size of the matmul kernels
  # differs, which changes float32 rounding by ~eps. Newton–Schulz amplifies
  # an input perturbation by at most max|p'| per step, and Jordan's quintic
  # has p'(0) = a = 3.4445 (the other schedules are below it), so five steps
  # bound the amplification by a**5 ≈ 488: tolerance a**5 · eps32 ≈ 5.8e-5.
  # Measured over 150 seeds: ≤ 7.8e-6 (frobenius), ≤ 2.3e-5 ('spectral',
  # whose σ₁ = 1 start puts more of the spectrum where p' is large).
  tol = 3.4445 ** 5 * float(jnp.finfo(jnp.float32).eps)
  for k in g:
    _close(outs[0][k], outs[1][k], tol, msg=k)


@pytest.mark.parametrize("method", ["newton_schulz", "svd"])
def test_stacked_equals_per_slice(rng, method):
  stack = _randn(rng, (3, 7, 4))
  tx = spectral_jax.scale_by_polar(method, weight_dimension_numbers=DN(1, 2))
  out, _ = tx.update(stack, None)
  for i in range(3):
    alone, _ = spectral_jax.scale_by_polar(method).update(stack[i], None)
    _close(out[i], alone, 1e-5, msg=f"slice {i}")


# ------------------------------------------------------------ exact polar --
@pytest.mark.parametrize("method", ["svd", "eigh", "qdwh"])
def test_scale_by_polar_exact_matches_numpy(rng, method):
  g = {"wide": _randn(rng, (5, 9), jnp.float64),
       "tall": _randn(rng, (9, 5), jnp.float64),
       "stack": _randn(rng, (2, 4, 6), jnp.float64)}
  if method != "qdwh":
    g["cplx"] = _randn(rng, (4, 7), jnp.complex128)
  dims = {k: (DN(1, 2) if k == "stack" else DN()) for k in g}
  out, _ = spectral_jax.scale_by_polar(
      method, weight_dimension_numbers=dims).update(g, None)
  for k in g:
    want, _ = _np_polar(g[k])
    # Gaussian 5×9 blocks are well conditioned; float64 agrees to ~1e-12,
    # eigh squares the condition number, qdwh iterates to ~1e-10.
    np.testing.assert_allclose(out[k], want, atol=1e-8, err_msg=k)


def test_scale_by_polar_newton_schulz_schedules(rng):
  g = _randn(rng, (16, 24), jnp.float64)
  want, _ = _np_polar(g)
  err = {}
  for coeffs in ("jordan", "polar_express"):
    out, _ = spectral_jax.scale_by_polar(
        "newton_schulz", ns_coeffs=coeffs, ns_steps=8).update(g, None)
    err[coeffs] = np.linalg.norm(out - want) / np.linalg.norm(want)
  # Polar Express converges; Jordan's quintic plateaus (arXiv:2505.16932).
  assert err["polar_express"] < 0.02 < 0.05 < err["jordan"], err


def test_scale_by_specgd_matches_numpy(rng):
  g = {"w": _randn(rng, (6, 9), jnp.float64),
       "s": _randn(rng, (3, 5, 4), jnp.float64),
       "z": _randn(rng, (4, 6), jnp.complex128)}
  dims = {"w": DN(), "s": DN(1, 2), "z": DN()}
  lip = 3.7
  for method in ("svd", "eigh"):
    out, _ = spectral_jax.scale_by_specgd(
        method, lip, weight_dimension_numbers=dims).update(g, None)
    for k in g:
      p, nuc = _np_polar(g[k])
      want = (nuc[..., None, None] if p.ndim == 3 else nuc) * p / lip
      np.testing.assert_allclose(out[k], want, atol=1e-8 * np.max(nuc),
                                 err_msg=f"{method} {k}")


def test_compute_dtype_bfloat16(rng):
  g = {"w": _randn(rng, (16, 32))}
  tx32 = spectral_jax.scale_by_muon()
  txbf = spectral_jax.scale_by_muon(compute_dtype=jnp.bfloat16)
  u32, _ = tx32.update(g, tx32.init(g))
  ubf, sbf = txbf.update(g, txbf.init(g))
  assert ubf["w"].dtype == jnp.float32 and sbf.mu["w"].dtype == jnp.float32
  # A true bf16 iteration is ~6-8% off the float32 one (bf16's 8-bit
  # mantissa through five quintic steps). Yardstick: the textbook bf16
  # iteration (optax's formula) on the same matrix (at step 1 the Nesterov
  # momentum is a positive multiple of g, and the iteration is scale
  # invariant): ours may not be worse than 1.5x its error.
  ref = textbook_newton_schulz(g["w"], [(3.4445, -4.7750, 2.0315)] * 5,
                               dtype=jnp.bfloat16)
  err = lambda u: float(np.linalg.norm(np.asarray(u, np.float64) - u32["w"])
                        / np.linalg.norm(u32["w"]))
  assert err(ubf["w"]) <= 1.5 * err(ref)


# ------------------------------------------------- zero and non-finite ----
def test_zero_inputs_give_zero_for_every_method():
  z = {"s": jnp.zeros((2, 5, 3), jnp.float32)}
  dims = {"s": DN(1, 2)}
  txs = [spectral_jax.scale_by_polar(m, weight_dimension_numbers=dims)
         for m in ("svd", "eigh", "qdwh", "newton_schulz")]
  txs += [spectral_jax.scale_by_polar("newton_schulz", eps=None,
                                      ns_coeffs="polar_express",
                                      weight_dimension_numbers=dims)]
  txs += [spectral_jax.scale_by_specgd("svd", 2.0,
                                       weight_dimension_numbers=dims)]
  txs += [spectral_jax.scale_by_muon(preconditioning=p, adaptive=True,
                                     weight_dimension_numbers=dims)
          for p in ("frobenius", "spectral", "aol", "schatten")]
  txs += [spectral_jax.scale_by_muon(polar_method=m,
                                     weight_dimension_numbers=dims)
          for m in ("svd", "eigh", "qdwh")]
  txs += [spectral_jax.scale_by_muon(compute_dtype=jnp.bfloat16,
                                     weight_dimension_numbers=dims)]
  for tx in txs:
    out, _ = tx.update(z, tx.init(z))
    for leaf in jax.tree.leaves(out):
      assert np.all(np.asarray(leaf) == 0)


@pytest.mark.parametrize("method", ["newton_schulz", "svd"])
def test_nonfinite_stays_in_its_matrix(rng, method):
  # A NaN in one layer of a stacked leaf: that layer's update is NaN; the
  # other layer, and the other leaf batched with it, are unchanged.
  g = {"s": _randn(rng, (2, 6, 8)), "w": _randn(rng, (6, 8))}
  dims = {"s": DN(1, 2), "w": DN()}
  bad = {"s": g["s"].at[0, 1, 1].set(jnp.nan), "w": g["w"]}
  tx = spectral_jax.scale_by_polar(method, weight_dimension_numbers=dims)
  out_bad, _ = tx.update(bad, None)
  out_ok, _ = tx.update(g, None)
  assert np.all(np.isnan(np.asarray(out_bad["s"][0])))
  np.testing.assert_array_equal(out_bad["s"][1], out_ok["s"][1])
  np.testing.assert_array_equal(out_bad["w"], out_ok["w"])


def test_nonfinite_mask_does_not_hold_the_input():
  # The wrapped call's input is, in an optimizer, a batched call's stack (an
  # intermediate). The finiteness mask is taken before the polar factor
  # reads it, so it is dead after that read: wrapping adds the mask's few
  # bytes, not one matrix. Masking only the output let XLA schedule the
  # check last and hold the input through the whole iteration (measured:
  # 1.18 MB here, against 0.79 MB unwrapped).
  x = jax.ShapeDtypeStruct((6, 128, 128), jnp.float32)
  polar = lambda y: spectral_jax.linalg.newton_schulz(y, 5)

  def temp(fn):
    lowered = jax.jit(lambda a, b: fn(a * b)).lower(x, x)
    return lowered.compile().memory_analysis().temp_size_in_bytes

  one_matrix = 128 * 128 * 4
  assert temp(optax_compat.nan_if_nonfinite(polar)) < (
      temp(polar) + one_matrix)


# ------------------------------------------------------------- bad input --
@pytest.mark.parametrize("build, name", [
    (lambda: spectral_jax.scale_by_polar("lu"), "method"),
    (lambda: spectral_jax.scale_by_polar("newton_schulz", ns_steps=0),
     "ns_steps"),
    (lambda: spectral_jax.scale_by_polar("newton_schulz", ns_coeffs="x"),
     "ns_coeffs"),
    (lambda: spectral_jax.scale_by_specgd("svd", 0.0), "lipschitz"),
    (lambda: spectral_jax.scale_by_specgd("svd", float("nan")), "lipschitz"),
    (lambda: spectral_jax.scale_by_muon(beta=1.5), "beta"),
    (lambda: spectral_jax.scale_by_muon(ns_steps=-1), "ns_steps"),
    (lambda: spectral_jax.scale_by_muon(polar_method="x"), "polar_method"),
    (lambda: spectral_jax.scale_by_muon(preconditioning="x"),
     "preconditioning"),
    (lambda: spectral_jax.scale_by_muon(ns_coeffs=(1.0, 2.0)), "ns_coeffs"),
    (lambda: spectral_jax.scale_by_muon(compute_dtype=jnp.int32),
     "compute_dtype"),
    (lambda: spectral_jax.scale_by_shape(consistent_rms=-0.1),
     "consistent_rms"),
    (lambda: transforms.orthogonalize_via_newton_schulz(
        jnp.ones((2, 3)), jnp.ones(3), preconditioning="x"),
     "preconditioning"),
])
def test_bad_input_raises_value_error(build, name):
  with pytest.raises(ValueError, match=name):
    build()


def test_float16_norms_accumulate_in_float32(rng):
  # Issue 18 item 7: float16 specgd / muon(adaptive=True) overflowed to inf
  # where the float32 result fits in float16. Here ‖G‖_* ≈ 1.1e5 > 65504
  # (float16's max) while every entry of the update stays below ~5e4.
  # (beta=0: optax's bias-corrected Nesterov term weighs g by 1/(1-β) = 20,
  # which overflows float16 gradients of this size in optax too.)
  g = np.asarray(rng.standard_normal((64, 64)) * 250, np.float16)
  for tx in (spectral_jax.scale_by_muon(adaptive=True, beta=0.0),
             spectral_jax.scale_by_specgd()):
    g32 = jnp.asarray(g, jnp.float32)
    u32, _ = tx.update({"w": g32}, tx.init({"w": g32}))
    assert float(jnp.sum(jnp.linalg.svd(g32, compute_uv=False))) > 65504
    assert float(jnp.max(jnp.abs(u32["w"]))) < 65504
    u16, _ = tx.update({"w": jnp.asarray(g)}, tx.init({"w": jnp.asarray(g)}))
    assert u16["w"].dtype == jnp.float16
    # float16 through five Newton–Schulz steps: ~1e-2 relative.
    err = float(jnp.linalg.norm(u16["w"].astype(jnp.float32) - u32["w"])
                / jnp.linalg.norm(u32["w"]))
    assert err <= 3e-2, err
