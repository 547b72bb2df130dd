"""Chronos-2 time-series forecasting on a Rust core, with the API of chronos-forecasting's
``Chronos2Pipeline`` (``predict``, ``predict_quantiles``, ``predict_df``, ``embed``) plus ``embed_df``,
and scale-out on Ray (``chronos2.ray.predict_df``).

>>> from chronos2 import Chronos2Pipeline
>>> pipeline = Chronos2Pipeline.from_pretrained()          # the bundled chronos2-mini
>>> forecast = pipeline.predict_df(df, prediction_length=24)
"""

from .pipeline import DEFAULT_QUANTILE_LEVELS, Chronos2Pipeline

__all__ = ["Chronos2Pipeline", "DEFAULT_QUANTILE_LEVELS"]
