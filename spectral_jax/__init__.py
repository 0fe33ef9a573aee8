"""spectral_jax: spectral gradient methods for JAX and Optax.

Exact and Newton–Schulz polar factors, SpecGD and a drop-in ``optax.contrib.muon``
as Optax ``GradientTransformation``s, and diagnostics that say, layer by layer,
whether a spectral update should beat a Euclidean one (Davis & Drusvyatskiy,
arXiv:2512.04299).
"""

from spectral_jax.linalg import POLAR_METHODS
from spectral_jax.linalg import SCHEDULES
from spectral_jax.linalg import Schedule
from spectral_jax.linalg import gram
from spectral_jax.linalg import newton_schulz
from spectral_jax.linalg import nuclear_norm
from spectral_jax.linalg import nuclear_rank
from spectral_jax.linalg import polar
from spectral_jax.linalg import singular_values
from spectral_jax.linalg import spectral_entropy
from spectral_jax.linalg import stable_rank
from spectral_jax.linalg import stable_rank_from_gram

__version__ = "0.1.0"

__all__ = [
    "POLAR_METHODS",
    "SCHEDULES",
    "Schedule",
    "gram",
    "newton_schulz",
    "nuclear_norm",
    "nuclear_rank",
    "polar",
    "singular_values",
    "spectral_entropy",
    "stable_rank",
    "stable_rank_from_gram",
]
