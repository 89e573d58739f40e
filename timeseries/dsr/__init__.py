"""Dynamical-systems reconstruction: AL-RNN, PLRNN, shallow PLRNN, their symbolic codes, the field's measures
(D_stsp, D_H, PE) and generators of chaotic benchmark systems."""

from .data import DSRDataModule, SubsequenceDataset, check_series, load_series
from .forcing import anneal_alpha, estimate_alpha, forced_rollout, forcing_weights
from .metric_classes import PowerSpectrumError, PredictionError, StateSpaceDivergence
from .metrics import (
    n_step_predictions,
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
from .plots import plot_reconstruction, plot_symbolic_code
from .subregions import SymbolicCode, bits_to_ids, ids_to_bits, symbolic_code, symbolic_code_from_bits
from .systems import lorenz63, lorenz96, rossler

__all__ = [
    "DSRDataModule",
    "SubsequenceDataset",
    "anneal_alpha",
    "check_series",
    "estimate_alpha",
    "forced_rollout",
    "forcing_weights",
    "load_series",
    "ALRNN",
    "PLRNN",
    "PowerSpectrumError",
    "PredictionError",
    "AffineObservation",
    "ClippedShallowPLRNN",
    "FixedPoints",
    "IdentityObservation",
    "PiecewiseLinearRNN",
    "ShallowPLRNN",
    "StateSpaceDivergence",
    "SymbolicCode",
    "bits_to_ids",
    "condition_number_penalty",
    "ids_to_bits",
    "lorenz63",
    "lorenz96",
    "n_step_predictions",
    "normalized_positive_definite",
    "plot_reconstruction",
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
