"""spectral_jax: spectral gradient methods for JAX and Optax.

Exact and Newton–Schulz polar factors, SpecGD and a drop-in ``optax.contrib.muon``
as Optax ``GradientTransformation``s, and diagnostics that say, layer by layer,
whether a spectral update should beat a Euclidean one (Davis & Drusvyatskiy,
arXiv:2512.04299).
"""

# Before anything can start JAX's CPU backend: see spectral_jax/xla_cpu.py.
from spectral_jax import xla_cpu as _xla_cpu

_xla_cpu.apply()

# The user API: one job, one name each (README's "API" table lists exactly
# these; tests/test_api.py keeps the two in step). Everything else stays
# importable from its module: spectral_jax.linalg (newton_schulz, SCHEDULES,
# gram, spectral_entropy, ...), spectral_jax.transforms
# (orthogonalize_via_newton_schulz, optax's name), spectral_jax.curvature,
# spectral_jax.diagnostics, spectral_jax.gating, spectral_jax.labels.
# pylint: disable=g-import-not-at-top,wrong-import-position
from spectral_jax.alias import muon
from spectral_jax.alias import specgd
from spectral_jax.diagnostics import layerwise_report
from spectral_jax.diagnostics import monitor_nuclear_rank
from spectral_jax.gating import gated_specgd
from spectral_jax.gating import scale_by_gated_spectral
from spectral_jax.labels import MuonDimensionNumbers
from spectral_jax.labels import describe
from spectral_jax.labels import matrix_partition
from spectral_jax.labels import nnx_dimension_numbers
from spectral_jax.labels import stacked_dimension_numbers
from spectral_jax.linalg import nuclear_norm
from spectral_jax.linalg import nuclear_rank
from spectral_jax.linalg import polar
from spectral_jax.linalg import stable_rank
from spectral_jax.neuron_norm import normuon
from spectral_jax.neuron_norm import scale_by_normuon
from spectral_jax.probe import probe_model
from spectral_jax.probe import probe_step
from spectral_jax.attention_clip import capture_logit_max
from spectral_jax.attention_clip import qk_clip
from spectral_jax.robust import skip_nonfinite
from spectral_jax.transforms import scale_by_muon
from spectral_jax.transforms import scale_by_polar
from spectral_jax.transforms import scale_by_shape
from spectral_jax.transforms import scale_by_specgd
# pylint: enable=g-import-not-at-top,wrong-import-position

__version__ = "0.1.0"

__all__ = [
    # Optimizers (optax.GradientTransformation, learning rate included).
    "muon",
    "specgd",
    "gated_specgd",
    "normuon",
    # Optax building blocks (directions and wrappers).
    "scale_by_polar",
    "scale_by_specgd",
    "scale_by_muon",
    "scale_by_shape",
    "scale_by_normuon",
    "scale_by_gated_spectral",
    "monitor_nuclear_rank",
    "skip_nonfinite",
    "qk_clip",
    "capture_logit_max",
    # Which leaves are matrices.
    "MuonDimensionNumbers",
    "stacked_dimension_numbers",
    "nnx_dimension_numbers",
    "matrix_partition",
    "describe",
    # Matrix functions.
    "polar",
    "nuclear_norm",
    "nuclear_rank",
    "stable_rank",
    # Diagnostics.
    "layerwise_report",
    "probe_step",
    "probe_model",
]
