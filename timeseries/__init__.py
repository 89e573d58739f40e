"""Time-series heads: sequence classification, dynamical-systems reconstruction, forecasting."""
