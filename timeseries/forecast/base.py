"""The interface every forecaster in this package has, so that ``Forecaster`` trains any of them unchanged."""

import torch
from torch import nn


class ForecastModel(nn.Module):
    """A model mapping an input window to the next ``horizon`` steps.

    ``forward(x [B, input_len, n_channels], x_mark [B, input_len, n_time_features],
    y_mark [B, horizon, n_time_features]) -> [B, horizon, n_channels]``, in the data's (scaled) units. The time
    features of the horizon (``y_mark``) are calendar values, known in advance; a model may ignore them.

    Args:
        input_len: steps of the input window.
        horizon: steps forecast.
        n_channels: series modelled (1 for univariate ``S``).
        n_time_features: time features per step (4 for hourly data: hour, weekday, day of month, day of year).
    """

    def __init__(self, input_len: int, horizon: int, n_channels: int, n_time_features: int) -> None:
        super().__init__()
        for name, value, low in (
            ("input_len", input_len, 1),
            ("horizon", horizon, 1),
            ("n_channels", n_channels, 1),
            ("n_time_features", n_time_features, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.input_len, self.horizon = input_len, horizon
        self.n_channels, self.n_time_features = n_channels, n_time_features

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters that want their own optimiser settings, by group name (none unless a model says so)."""
        return {}

    def check_inputs(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor) -> None:
        """Raise ``ValueError`` unless the three inputs have the shapes ``forward`` documents."""
        batch = x.shape[0]
        expected = {
            "x": (x, (batch, self.input_len, self.n_channels)),
            "x_mark": (x_mark, (batch, self.input_len, self.n_time_features)),
            "y_mark": (y_mark, (batch, self.horizon, self.n_time_features)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
