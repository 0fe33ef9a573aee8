"""Matrix functions for spectral gradient methods.

Every function treats the last two axes as the matrix and any leading axes as a
batch, works for tall and wide inputs and jits. Polar factors keep the input
dtype; spectral summaries come in at least float32 (there is no 16-bit SVD).
This package imports jax and numpy only: everything else in spectral_jax
stands on it.

Modules:
  * ``ns``: THE Newton–Schulz engine (``newton_schulz``: first-step table
    ``NS_NORMS``, direct and m×m Gram bodies with restarts, static or traced
    step counts) and ``newton_schulz_flops``.
  * ``schedules``: the coefficient schedules (``Schedule``, the named
    ``SCHEDULES``, ``polar_express_schedule`` for any step count and σ_min,
    the parser ``resolve_schedule`` / ``schedule_coeffs``); the Polar Express
    construction itself is in ``polar_express``.
  * ``exact``: ``polar``, the polar factor U Vᴴ of G = U Σ Vᴴ, exactly
    (``"svd"``, ``"eigh"``, ``"qdwh"``, or ``"auto"``: the fastest of these
    measured for the backend) or approximately (``"newton_schulz"``).
  * ``ranks``: ``nuclear_norm``, ``stable_rank``, ``nuclear_rank``,
    ``spectral_entropy``, ``gram`` accumulation and ``operator_norm_sq``.
  * ``base``: input checks and the scale-safe helpers the others share.

References:
  Davis & Drusvyatskiy, *When do spectral gradient updates help in deep
  learning?*, arXiv:2512.04299.
  Amsel, Persson, Musco & Gower, *The Polar Express*, arXiv:2505.16932.
  Jordan et al., *Muon*, https://kellerjordan.github.io/posts/muon/.
"""

from spectral_jax.linalg.exact import POLAR_METHODS
from spectral_jax.linalg.exact import polar
from spectral_jax.linalg.ns import NS_NORMS
from spectral_jax.linalg.ns import newton_schulz
from spectral_jax.linalg.ns import newton_schulz_flops
from spectral_jax.linalg.schedules import ALIASES
from spectral_jax.linalg.schedules import SCHEDULES
from spectral_jax.linalg.schedules import Schedule
from spectral_jax.linalg.schedules import polar_express_schedule
from spectral_jax.linalg.schedules import resolve_schedule
from spectral_jax.linalg.schedules import schedule_coeffs
from spectral_jax.linalg.ranks import gram
from spectral_jax.linalg.ranks import nuclear_norm
from spectral_jax.linalg.ranks import nuclear_rank
from spectral_jax.linalg.ranks import operator_norm_sq
from spectral_jax.linalg.ranks import singular_values
from spectral_jax.linalg.ranks import spectral_entropy
from spectral_jax.linalg.ranks import stable_rank
from spectral_jax.linalg.ranks import stable_rank_from_gram

__all__ = [
    "ALIASES",
    "NS_NORMS",
    "POLAR_METHODS",
    "SCHEDULES",
    "Schedule",
    "gram",
    "newton_schulz",
    "newton_schulz_flops",
    "nuclear_norm",
    "nuclear_rank",
    "operator_norm_sq",
    "polar",
    "polar_express_schedule",
    "resolve_schedule",
    "schedule_coeffs",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "stable_rank_from_gram",
]
