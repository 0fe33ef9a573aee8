r"""One-step advantage probe: does nr(G_ℓ) ≥ st(A_{ℓ−1}) predict the real step?

The layerwise condition of Davis & Drusvyatskiy compares the *guaranteed*
decreases of two steps on one weight matrix ``W_ℓ`` with every other parameter
held fixed:

.. math::
  \Delta^{g}_{GD} = \frac{\|G\|_F^2}{2 L^F}, \qquad
  \Delta^{g}_{Spec} = \frac{\|G\|_*^2}{2 L^{op}}, \qquad
  \frac{\Delta^{g}_{Spec}}{\Delta^{g}_{GD}} = \frac{nr(G)}{st(A)},

with ``L^F = c‖A‖_op²/n`` and ``L^op = c‖A‖_F²/n`` built from the incoming
activation ``A`` (the paper's (1.4), (4.8) and (4.14)–(4.15); the ``C_op``
terms of (4.14)–(4.16) are left out, which gives its sufficient condition
(4.18), ``nr ≥ st``). The probe measures, for
every probed matrix, how the two directions ``D = G`` (Euclidean) and
``D = polar(G)`` (spectral) really do, in up to four *regimes*:

* ``"guaranteed"``: the two bounds above (their ratio is the prediction);
* ``"paper"``: the realized loss decrease of the paper's steps
  ``W − G/L^F`` and ``W − (‖G‖_*/L^op)·polar(G)`` on the true loss;
* ``"best"``: the best step along ``D`` under the local quadratic model,
  ``⟨G, D⟩² / (2⟨D, H D⟩)``, from one Hessian-vector product per direction
  (``H`` is the block Hessian of ``W_ℓ``, or its Gauss–Newton part);
* ``"line_search"`` (optional): the largest realized decrease over a short
  grid of steps along ``D`` on the true loss (the paper's step included).

In each regime the realized verdict "spectral is at least as good"
(``Δ_Spec ≥ Δ_GD``) is compared with the predicted one (``nr ≥ st``).

Conventions. Activations are *samples × features* — the layout of
:func:`spectral_jax.diagnostics.capture_activations` and of Flax, where a
kernel has shape ``(fan_in, fan_out)`` and ``y = x W``: pass ``A`` of shape
``(n, fan_in)``. In the paper's layout ``W`` is ``m × k`` and ``A`` is
``k × n`` (``y = W A``): pass ``A.T``. The probe never needs to know which
layout a kernel uses — ``nr``, ``st``, ``polar`` and both constants are
transpose-invariant — and only checks that the feature axis of ``A`` matches
one of the two matrix axes of ``W``. ``n`` is the number of rows of ``A``
(all leading sample axes flattened). A *stacked* leaf of shape
``(*layers, a, b)`` (``nnx.vmap``/``nnx.scan`` blocks) needs activations of
shape ``(*layers, *samples, features)``; it is reported per layer, and the
layers are probed in one batched (vmapped) call.

The curvature scale ``c``. For ``(1/2n)‖WA − Y‖²`` the constants are exact
with ``c = 1``. For any other loss ``L^F, L^op`` are only known up to a common
factor (the paper's (1.6): ``c`` = the smoothness of the loss in the layer's
output; ``c = 2`` for a mean-squared error without ½ at the last layer; for
inner layers ``C_F`` of (4.5)). One ``c`` multiplies both constants, so it
rescales both paper steps alike and never changes the prediction ``nr/st``,
the ``"guaranteed"`` verdicts or the ``"best"`` regime; it does change the
realized ``"paper"`` decreases. ``c`` may be a float or a mapping path → float.

Layout: :mod:`~spectral_jax.probe.step` (the entry points and argument
checks), :mod:`~spectral_jax.probe.leaf` (the measurements on one parameter,
its layers batched; Hessian-vector products by
:func:`spectral_jax.curvature.hvp`, ranks from :mod:`spectral_jax.linalg`),
:mod:`~spectral_jax.probe.report` (:class:`ProbeStats`, :class:`ProbeReport`).
Parameters are named by :func:`spectral_jax.labels.path_name`
(``'layers/0/kernel'``).

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299, §1.2 and §4.
  Carlson, Cevher & Carin, *Stochastic spectral descent for restricted
  Boltzmann machines*, AISTATS 2015.
  Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation
  6(1), 1994.
"""


from spectral_jax.probe.report import REGIMES
from spectral_jax.probe.report import ProbeReport
from spectral_jax.probe.report import ProbeStats
from spectral_jax.probe.step import DEFAULT_LINE_SEARCH_FACTORS
from spectral_jax.probe.step import path_key
from spectral_jax.probe.step import probe_model
from spectral_jax.probe.step import probe_step

__all__ = [
    "DEFAULT_LINE_SEARCH_FACTORS",
    "ProbeReport",
    "ProbeStats",
    "REGIMES",
    "path_key",
    "probe_model",
    "probe_step",
]
