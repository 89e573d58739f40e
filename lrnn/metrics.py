"""Metric-state housekeeping that the domains' LightningModules share."""

from torch import nn
from torchmetrics import Metric


def reset_metrics(module: nn.Module) -> None:
    """Reset every torchmetrics ``Metric`` inside ``module``. Called when a validation or test epoch starts, so
    that the states are made under that loop's own grad mode: ``trainer.validate`` runs in inference mode, the
    validation inside ``fit`` does not, and states made in one cannot be updated in place in the other."""
    for metric in module.modules():
        if isinstance(metric, Metric):
            metric.reset()


class ResetMetricsOnEvaluation:
    """LightningModule mixin, listed before ``L.LightningModule``: ``reset_metrics`` whenever a validation or test
    epoch starts."""

    def on_validation_epoch_start(self) -> None:
        reset_metrics(self)

    def on_test_epoch_start(self) -> None:
        reset_metrics(self)
