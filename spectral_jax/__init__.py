"""spectral_jax: spectral gradient methods for JAX and Optax.

Exact and Newton–Schulz polar factors, SpecGD and a drop-in ``optax.contrib.muon``
as Optax ``GradientTransformation``s, and diagnostics that say, layer by layer,
whether a spectral update should beat a Euclidean one (Davis & Drusvyatskiy,
arXiv:2512.04299).
"""

# Before anything can start JAX's CPU backend: see spectral_jax/xla_cpu.py.
from spectral_jax import xla_cpu as _xla_cpu

_xla_cpu.apply()

from spectral_jax.alias import muon  # pylint: disable=g-import-not-at-top,wrong-import-position
from spectral_jax.alias import specgd
from spectral_jax.curvature import average_singular_value
from spectral_jax.curvature import hessian_lambda_max
from spectral_jax.curvature import hvp
from spectral_jax.curvature import step_threshold
from spectral_jax.diagnostics import LayerwiseReport
from spectral_jax.diagnostics import capture_activations
from spectral_jax.diagnostics import layerwise_report
from spectral_jax.diagnostics import monitor_nuclear_rank
from spectral_jax.gating import gated_spectral
from spectral_jax.gating import gated_specgd
from spectral_jax.gating import stable_rank_tree
from spectral_jax.labels import MuonDimensionNumbers
from spectral_jax.labels import describe
from spectral_jax.labels import nnx_dimension_numbers
from spectral_jax.labels import stacked_dimension_numbers
from spectral_jax.linalg import POLAR_METHODS
from spectral_jax.linalg import SCHEDULES
from spectral_jax.linalg import Schedule
from spectral_jax.linalg import gram
from spectral_jax.linalg import newton_schulz
from spectral_jax.linalg import newton_schulz_flops
from spectral_jax.linalg import nuclear_norm
from spectral_jax.linalg import nuclear_rank
from spectral_jax.linalg import operator_norm_sq
from spectral_jax.linalg import polar
from spectral_jax.linalg import resolve_schedule
from spectral_jax.linalg import schedule_coeffs
from spectral_jax.linalg import singular_values
from spectral_jax.linalg import spectral_entropy
from spectral_jax.linalg import stable_rank
from spectral_jax.linalg import stable_rank_from_gram
from spectral_jax.probe import ProbeReport
from spectral_jax.probe import probe_model
from spectral_jax.probe import probe_step
from spectral_jax.robust import SkipNonFiniteState
from spectral_jax.robust import skip_nonfinite
from spectral_jax.transforms import orthogonalize_via_newton_schulz
from spectral_jax.transforms import scale_by_muon
from spectral_jax.transforms import scale_by_polar
from spectral_jax.transforms import scale_by_shape
from spectral_jax.transforms import scale_by_specgd

__version__ = "0.1.0"

__all__ = [
    "LayerwiseReport",
    "capture_activations",
    "layerwise_report",
    "monitor_nuclear_rank",
    "gated_spectral",
    "gated_specgd",
    "stable_rank_tree",
    "average_singular_value",
    "hessian_lambda_max",
    "hvp",
    "step_threshold",
    "MuonDimensionNumbers",
    "describe",
    "muon",
    "nnx_dimension_numbers",
    "orthogonalize_via_newton_schulz",
    "scale_by_muon",
    "scale_by_polar",
    "scale_by_shape",
    "scale_by_specgd",
    "specgd",
    "stacked_dimension_numbers",
    "POLAR_METHODS",
    "SCHEDULES",
    "Schedule",
    "gram",
    "newton_schulz",
    "nuclear_norm",
    "nuclear_rank",
    "operator_norm_sq",
    "polar",
    "singular_values",
    "newton_schulz_flops",
    "resolve_schedule",
    "schedule_coeffs",
    "spectral_entropy",
    "stable_rank",
    "stable_rank_from_gram",
    "ProbeReport",
    "probe_model",
    "probe_step",
    "SkipNonFiniteState",
    "skip_nonfinite",
]
