"""Dynamical-systems reconstruction: AL-RNN, PLRNN, shallow PLRNN, their symbolic codes, the field's measures
(D_stsp, D_H, PE) and generators of chaotic benchmark systems."""

from .data import DSRDataModule, SubsequenceDataset, load_series
from .forcing import anneal_alpha, estimate_alpha, forced_rollout, forcing_weights
from .metrics import (
    power_spectrum_error,
    prediction_error,
    state_space_divergence,
    state_space_divergence_bins,
    state_space_divergence_gmm,
    state_space_self_distance,
)
from .models import (
    ALRNN,
    PLRNN,
    ClippedShallowPLRNN,
    FixedPoints,
    PiecewiseLinearRNN,
    ShallowPLRNN,
    normalized_positive_definite,
)
from .observation import AffineObservation, IdentityObservation, condition_number_penalty
from .subregions import (
    SymbolicCode,
    bits_to_ids,
    ids_to_bits,
    plot_symbolic_code,
    symbolic_code,
    symbolic_code_from_bits,
)
from .systems import lorenz63, lorenz96, rossler

__all__ = [
    "DSRDataModule",
    "SubsequenceDataset",
    "anneal_alpha",
    "estimate_alpha",
    "forced_rollout",
    "forcing_weights",
    "load_series",
    "ALRNN",
    "PLRNN",
    "AffineObservation",
    "ClippedShallowPLRNN",
    "FixedPoints",
    "IdentityObservation",
    "PiecewiseLinearRNN",
    "ShallowPLRNN",
    "SymbolicCode",
    "bits_to_ids",
    "condition_number_penalty",
    "ids_to_bits",
    "lorenz63",
    "lorenz96",
    "normalized_positive_definite",
    "plot_symbolic_code",
    "power_spectrum_error",
    "prediction_error",
    "rossler",
    "state_space_divergence",
    "state_space_divergence_bins",
    "state_space_divergence_gmm",
    "state_space_self_distance",
    "symbolic_code",
    "symbolic_code_from_bits",
]
