"""Matrix sensing: measurement operators, reference interpolants, self-polar flow.

The underdetermined regression model of Beneventano et al. (paper 3): a linear
map 𝒜: R^{d₁×d₂} → R^m, ``𝒜(W)_i = ⟨A_i, W⟩`` with m < d₁d₂, measurements
``y = 𝒜(W*)`` and the interpolation set ``{W : 𝒜(W) = y}``. This module holds
what every optimizer comparison on that model needs, as library code:

  * ``gaussian_sensing``: a random instance (Gaussian A_i, low-rank W*).
  * ``Interpolation``: the affine set — residual, projection onto it, the
    projection ``P_⊥`` onto null(𝒜) (its tangent space) and the
    minimum-Frobenius interpolant ``𝒜^†y``.
  * ``nuclear_norm_minimizer``: ``argmin ‖W‖_* s.t. 𝒜(W) = y`` by
    Douglas–Rachford splitting with singular-value thresholding.
  * ``self_polar_flow`` and ``flow_alphas``: the projected self-polar flow
    ``W ← W − η P_⊥ polar(W)`` and its singular-value rates α_i.
  * ``scale_by_polar_norm``: the norm-matched-GD control, an update rescaled
    to the Frobenius norm of its polar factor.
  * ``fit``: run any Optax optimizer on the sensing loss.

References:
  Beneventano, Abdelmoneum & Poggio, *The Spectral Dynamics and Noise Geometry
  of Muon*, arXiv:2606.08388.
  Recht, Fazel & Parrilo, *Guaranteed minimum-rank solutions of linear matrix
  equations via nuclear norm minimization*, arXiv:0706.4138.
  Lions & Mercier, *Splitting algorithms for the sum of two nonlinear
  operators*, SIAM J. Numer. Anal. 16(6), 1979 (Douglas–Rachford).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from spectral_jax import linalg

__all__ = [
    "FlowTrace",
    "Interpolation",
    "SensingProblem",
    "fit",
    "flow_alphas",
    "gaussian_sensing",
    "measure",
    "nuclear_norm_minimizer",
    "scale_by_polar_norm",
    "self_polar_flow",
    "sensing_loss",
    "singular_value_threshold",
]


class SensingProblem(NamedTuple):
  """A matrix-sensing instance."""
  a: jax.Array       # shape=(m, d1, d2): measurement matrices A_i.
  y: jax.Array       # shape=(m,): y_i = ⟨A_i, W*⟩.
  w_star: jax.Array  # shape=(d1, d2): ground truth.


def _check_pos_int(name, value):
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be an int >= 1, got {value!r}.")


def gaussian_sensing(key: jax.Array, d1: int, d2: int, m: int, rank: int,
                     dtype=jnp.float32) -> SensingProblem:
  r"""Gaussian measurements of a random low-rank matrix.

  ``W* = U Vᵀ / √d`` with ``U ∈ R^{d₁×r}``, ``V ∈ R^{d₂×r}`` standard
  Gaussian and ``d = √(d₁d₂)``; ``A_i`` have i.i.d. N(0, 1) entries (a
  reconstruction: paper 3, arXiv:2606.08388, does not publish its setting).

  Args:
    key: PRNG key.
    d1, d2: matrix shape.
    m: number of measurements, ``1 <= m <= d1·d2``.
    rank: rank of W*, ``1 <= rank <= min(d1, d2)``.
    dtype: floating dtype of the arrays.

  Returns:
    A ``SensingProblem``.
  """
  for name, v in (("d1", d1), ("d2", d2), ("m", m), ("rank", rank)):
    _check_pos_int(name, v)
  if m > d1 * d2:
    raise ValueError(f"m must be <= d1*d2 = {d1 * d2}, got {m}.")
  if rank > min(d1, d2):
    raise ValueError(f"rank must be <= min(d1, d2) = {min(d1, d2)}, "
                     f"got {rank}.")
  ku, kv, ka = jax.random.split(key, 3)
  u = jax.random.normal(ku, (d1, rank), dtype)
  v = jax.random.normal(kv, (d2, rank), dtype)
  w_star = u @ v.T / jnp.sqrt(jnp.sqrt(jnp.asarray(d1 * d2, dtype)))
  a = jax.random.normal(ka, (m, d1, d2), dtype)
  return SensingProblem(a, measure(a, w_star), w_star)


def measure(a: jax.Array, w: jax.Array) -> jax.Array:
  """𝒜(W)_i = ⟨A_i, W⟩ for ``a`` of shape (m, d1, d2); W may be batched."""
  return jnp.einsum("mij,...ij->...m", a, w)


def sensing_loss(a: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
  r"""L(W) = (1/2m) Σ_i (⟨A_i, W⟩ − y_i)²."""
  return 0.5 * jnp.mean((measure(a, w) - y) ** 2)


class Interpolation:
  r"""The affine interpolation set ``{W : 𝒜(W) = y}``.

  With ``M ∈ R^{m×d₁d₂}`` the flattened measurement matrix (full row rank m)
  and ``Mᵀ = QR`` its thin QR factorisation:

  .. math::
    𝒜^\dagger r = Q R^{-T} r, \qquad P_\perp Z = Z - Q Q^T Z, \qquad
    \Pi(W) = W - 𝒜^\dagger(𝒜(W) - y).

  Built once (one QR of a d₁d₂ × m matrix); every method is jit-friendly.
  """

  def __init__(self, a: jax.Array, y: jax.Array):
    a, y = jnp.asarray(a), jnp.asarray(y)
    if a.ndim != 3 or y.shape != a.shape[:1]:
      raise ValueError(
          f"a must have shape (m, d1, d2) and y shape (m,), got a.shape="
          f"{a.shape}, y.shape={y.shape}.")
    m, d1, d2 = a.shape
    if m > d1 * d2:
      raise ValueError(f"m must be <= d1*d2 = {d1 * d2}, got {m}.")
    self.a, self.y, self.shape = a, y, (d1, d2)
    self.q, self.r = jnp.linalg.qr(a.reshape(m, d1 * d2).T)

  def residual(self, w: jax.Array) -> jax.Array:
    """𝒜(W) − y."""
    return measure(self.a, w) - self.y

  def pinv(self, r: jax.Array) -> jax.Array:
    """𝒜^† r, the minimum-Frobenius-norm solution of 𝒜(W) = r."""
    z = jax.scipy.linalg.solve_triangular(self.r, r, trans="T", lower=False)
    return (self.q @ z).reshape(self.shape)

  def project_null(self, z: jax.Array) -> jax.Array:
    """P_⊥ Z, the orthogonal projection onto null(𝒜)."""
    flat = z.reshape(*z.shape[:-2], -1)
    flat = flat - (flat @ self.q) @ self.q.T
    return flat.reshape(z.shape)

  def project(self, w: jax.Array) -> jax.Array:
    """Π(W), the nearest point (in Frobenius norm) of the interpolation set."""
    return w - self.pinv(self.residual(w))

  def min_frobenius(self) -> jax.Array:
    """𝒜^† y: the interpolant of least Frobenius norm (GD's limit from 0)."""
    return self.pinv(self.y)


def singular_value_threshold(x: jax.Array, tau) -> jax.Array:
  r"""prox of τ‖·‖_*: ``U max(Σ − τ, 0) Vᵀ`` (Cai, Candès & Shen 2008)."""
  u, s, vh = jnp.linalg.svd(x, full_matrices=False)
  return (u * jnp.maximum(s - tau, 0.0)[..., None, :]) @ vh


def nuclear_norm_minimizer(interp: Interpolation, *, iters: int = 3000,
                           tau: float | None = None,
                           w0: jax.Array | None = None) -> jax.Array:
  r"""``argmin ‖W‖_*`` subject to ``𝒜(W) = y``, by Douglas–Rachford.

  Splits ``τ‖W‖_* + ι{𝒜W = y}``:

  .. math::
    X_k = \Pi(Z_k), \qquad
    Z_{k+1} = Z_k + \mathrm{SVT}_\tau(2 X_k - Z_k) - X_k,

  and returns ``Π(Z_K)``, which interpolates exactly whatever K is. DR
  converges for every τ > 0; τ only sets the speed.

  Args:
    interp: the interpolation set.
    iters: number of DR iterations (>= 1).
    tau: threshold; default ``‖𝒜^†y‖_op / 20``, the scale of the answer.
    w0: starting point (default the min-Frobenius interpolant).

  Returns:
    The nuclear-norm-minimal interpolant (to the accuracy of ``iters``).
  """
  _check_pos_int("iters", iters)
  if tau is not None and not tau > 0:
    raise ValueError(f"tau must be > 0, got {tau!r}.")
  x0 = interp.min_frobenius() if w0 is None else jnp.asarray(w0)
  if tau is None:
    tau = linalg.singular_values(x0)[0] / 20.0

  def body(_, z):
    x = interp.project(z)
    return z + singular_value_threshold(2 * x - z, tau) - x

  z = jax.jit(lambda z: jax.lax.fori_loop(0, iters, body, z))(x0)
  return interp.project(z)


class FlowTrace(NamedTuple):
  """Per-step record of ``self_polar_flow`` (leading axis = step, 0 = start)."""
  nuclear_norm: jax.Array  # ‖W_t‖_*.
  entropy: jax.Array       # normalized spectral entropy, p ∝ σ.
  entropy_sq: jax.Array    # normalized spectral entropy, p ∝ σ².
  residual: jax.Array      # ‖𝒜(W_t) − y‖_2.


def self_polar_flow(interp: Interpolation, w0: jax.Array, *, eta: float,
                    steps: int) -> tuple[jax.Array, FlowTrace]:
  r"""The projected self-polar flow ``W_{t+1} = W_t − η P_⊥ polar(W_t)``.

  Started on the interpolation set, it stays there (P_⊥ moves along null(𝒜))
  and, in continuous time, ``d‖W‖_*/dt = −η‖P_⊥ polar(W)‖_F² ≤ 0``: it is
  projected subgradient flow of the nuclear norm (our reconstruction [R] of
  paper 3's underdetermined-regression model). The review
  of paper 3 calls it the key object of its Theorem 1.

  Args:
    interp: the interpolation set.
    w0: start (e.g. ``interp.min_frobenius()``).
    eta: step (> 0).
    steps: number of steps (>= 1).

  Returns:
    ``(W_T, FlowTrace)`` with ``steps + 1`` rows per trace field.
  """
  _check_pos_int("steps", steps)
  if not eta > 0:
    raise ValueError(f"eta must be > 0, got {eta!r}.")

  def record(w):
    return FlowTrace(linalg.nuclear_norm(w),
                     linalg.spectral_entropy(w, 1),
                     linalg.spectral_entropy(w, 2),
                     jnp.linalg.norm(interp.residual(w)))

  def body(w, _):
    w = w - eta * interp.project_null(linalg.polar(w))
    return w, record(w)

  @jax.jit
  def run(w):
    w_t, trace = jax.lax.scan(body, w, None, length=steps)
    return w_t, jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]),
                             record(w), trace)

  return run(jnp.asarray(w0))


def flow_alphas(interp: Interpolation, w: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Singular-value rates of the self-polar flow at W, in two forms.

  With ``W = Σ σ_i u_i v_iᵀ`` and ``Ẇ = −η P_⊥(UVᵀ)``, first-order
  perturbation gives ``σ̇_i = u_iᵀ Ẇ v_i = −η α_i`` exactly, with

  .. math::
    \alpha_i = \langle u_i v_i^T, P_\perp(U V^T) \rangle
             = \|P_\perp(u_i v_i^T)\|_F^2
               + \sum_{j \ne i} \langle u_i v_i^T, P_\perp(u_j v_j^T)\rangle.

  The review of paper 3 quotes ``α_i = ‖P_⊥ u_i‖²``, the first term alone; it
  is exact only when the cross terms vanish (claim 26 of the report). Both forms are
  returned so the gap can be reported.

  Returns:
    ``(sigma, alpha_exact, alpha_review)``, each of length min(d1, d2),
    ordered by descending σ.
  """
  u, s, vh = jnp.linalg.svd(w, full_matrices=False)
  polar = u @ vh
  p_polar = interp.project_null(polar)
  alpha_exact = jnp.einsum("ik,ij,kj->k", u, p_polar, vh)
  rank_one = jnp.einsum("ik,kj->kij", u, vh)  # u_k v_kᵀ, one per k.
  alpha_review = jnp.sum(interp.project_null(rank_one) ** 2, axis=(-2, -1))
  return s, alpha_exact, alpha_review


class ScaleByPolarNormState(NamedTuple):
  """No state: the rescaling looks at the current update only."""


def scale_by_polar_norm(*, rtol: float | None = None
                        ) -> optax.GradientTransformation:
  r"""Rescale each matrix update to the Frobenius norm of its polar factor.

  .. math::
    M \mapsto M \, \frac{\|\mathrm{polar}(M)\|_F}{\|M\|_F}
             = M \, \frac{\sqrt{\mathrm{rank}(M)}}{\|M\|_F}

  Followed by a learning rate, this is paper 3's *norm-matched GD* control:
  every step has the size of Muon's step but the direction of the (momentum)
  gradient. Leaves with fewer than two axes pass through unchanged; zero
  updates stay zero. The rank counts singular values above ``rtol · σ_1``
  (default ``max(m, n) · eps``), the cut-off ``linalg.polar`` uses.
  """

  def init_fn(params):
    del params
    return ScaleByPolarNormState()

  def scale(u):
    if u.ndim < 2:
      return u
    s = linalg.singular_values(u)
    tol = max(u.shape[-2:]) * float(jnp.finfo(s.dtype).eps) if rtol is None \
        else rtol
    rank = jnp.sum(s > tol * s[..., :1], axis=-1)
    fro = jnp.sqrt(jnp.sum(s**2, axis=-1))
    factor = jnp.where(fro > 0, jnp.sqrt(rank.astype(s.dtype))
                       / jnp.where(fro > 0, fro, 1), 0)
    return u * factor[..., None, None].astype(u.dtype)

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(scale, updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def fit(problem_or_interp, tx: optax.GradientTransformation, w0: jax.Array, *,
        steps: int, log_every: int = 0) -> tuple[jax.Array, jax.Array]:
  """Run an Optax optimizer on the sensing loss ``(1/2m)‖𝒜(W) − y‖²``.

  Args:
    problem_or_interp: a ``SensingProblem`` or ``Interpolation``.
    tx: any Optax ``GradientTransformation`` (GD, Muon, ...).
    w0: initial matrix.
    steps: number of steps (>= 1).
    log_every: record the loss every this many steps (0: final loss only).

  Returns:
    ``(W_T, losses)`` with the losses at steps 0, log_every, ..., and T.
  """
  _check_pos_int("steps", steps)
  a, y = problem_or_interp.a, problem_or_interp.y
  loss_fn = lambda w: sensing_loss(a, y, w)
  every = log_every if log_every and log_every > 0 else steps
  if steps % every:
    raise ValueError(
        f"log_every must divide steps, got log_every={log_every}, "
        f"steps={steps}.")

  def step(carry, _):
    w, state = carry
    g = jax.grad(loss_fn)(w)
    upd, state = tx.update(g, state, w)
    return (optax.apply_updates(w, upd), state), None

  def chunk(carry, _):
    carry, _ = jax.lax.scan(step, carry, None, length=every)
    return carry, loss_fn(carry[0])

  @jax.jit
  def run(w):
    (w_t, _), losses = jax.lax.scan(chunk, (w, tx.init(w)), None,
                                    length=steps // every)
    return w_t, jnp.concatenate([loss_fn(w)[None], losses])

  return run(jnp.asarray(w0))
