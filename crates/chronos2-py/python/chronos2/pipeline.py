"""``Chronos2Pipeline``: the API of chronos-forecasting's ``Chronos2Pipeline`` (2.3.2) on the
Rust implementation (names, arguments, defaults, input forms and output shapes as the reference;
arrays are numpy arrays instead of torch tensors)."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _finetune, _frames, _inputs, _pickling
from ._args import count, optional_count, positive_float
from ._native import DEFAULT_QUANTILE_LEVELS, NativeModel


def _quantize_name(quantize: Any) -> Optional[str]:
    if quantize is None or quantize is False:
        return None
    return str(quantize)


def _dtype_name(dtype: Any) -> Optional[str]:
    if dtype is None:
        return None
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        return np.dtype(dtype).name
    return str(dtype)


def _checkpoint_dtype(model_dir: str) -> Optional[str]:
    """``torch_dtype="auto"``: the dtype the checkpoint's ``config.json`` names (``torch_dtype``, or
    ``dtype`` as newer transformers write it); float32 when it names none."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    name = config.get("torch_dtype") or config.get("dtype")
    return None if name in (None, "float32") else str(name)


def _warn(messages: Sequence[str]) -> None:
    for m in messages:
        warnings.warn(m, stacklevel=3)


class Chronos2Pipeline:
    """A loaded Chronos-2 model. Create it with :meth:`from_pretrained`."""

    def __init__(self, native: NativeModel, source: Optional[tuple] = None):
        self._native = native
        #: How to build this pipeline again (pickling): see ``_pickling``.
        self._source = source
        self._last_backend: Optional[str] = None
        #: Seconds of the last predict_df: ``prepare_s`` (tables to items: Arrow conversion,
        #: validation, grouping, frequency), ``model_s``, ``output_s`` (the result DataFrame), ``total_s``.
        self.last_timings: dict = {}
        #: On a pipeline returned by :meth:`fit`: ``output``, ``dropped``, ``trainable_params``,
        #: ``train_losses``, ``validation_losses`` (``(step, loss)``) and ``kept_step``.
        self.fit_report: Optional[dict] = None

    @classmethod
    def from_pretrained(
        cls,
        model: Optional[str] = None,
        backend: str = "auto",
        quantize: Union[str, int, None] = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> "Chronos2Pipeline":
        """Loads ``model``: a directory with ``config.json`` and ``model.safetensors``, a Hugging Face
        id (``amazon/chronos-2``, from the local hub cache or downloaded), or ``None`` for the bundled
        chronos2-mini. ``backend``: ``auto`` (per call, the fastest route of this build) or the name
        of a backend (``chronos2 info`` lists them). ``quantize``: ``None``, ``"int8"`` or ``"int4"`` (weight-only). ``dtype``: ``None`` /
        ``float32``, ``bfloat16``, or ``"auto"`` (the dtype the checkpoint's ``config.json`` names).
        ``pretrained_model_name_or_path=`` is accepted as the reference's name of ``model``;
        ``device_map`` / ``torch_dtype`` are accepted for drop-in use (``torch_dtype`` as ``dtype``).
        A model that cannot be found raises ``FileNotFoundError``, a corrupt one ``OSError``."""
        if "pretrained_model_name_or_path" in kwargs:
            if model is not None:
                raise ValueError("give either model or pretrained_model_name_or_path, not both")
            model = kwargs.pop("pretrained_model_name_or_path")
        if "torch_dtype" in kwargs:
            dtype = kwargs.pop("torch_dtype") if dtype is None else dtype
        kwargs.pop("device_map", None)
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {list(kwargs.keys())}.")
        spec = None if model is None else os.fspath(model)
        location = spec
        dtype_name = _dtype_name(dtype)
        if dtype_name == "auto":
            location = NativeModel.resolve(spec)
            dtype_name = _checkpoint_dtype(location)
        quantize_name = _quantize_name(quantize)
        native = NativeModel.load(location, str(backend), quantize_name, dtype_name)
        # A local directory is remembered by its absolute path (unpickling may run elsewhere).
        if spec is not None and os.path.exists(spec):
            spec = os.path.abspath(spec)
        return cls(native, _pickling.pretrained(spec, str(backend), quantize_name, dtype_name))

    def __reduce__(self):
        """Pickling (``pickle``, ``copy.deepcopy``, Ray, multiprocessing, joblib): a pipeline from
        :meth:`from_pretrained` by reference (its model and options; loaded again when unpickled),
        one returned by :meth:`fit` by value (the checkpoint fit wrote, read now)."""
        return (_pickling.restore, (_pickling.state(self._source), self.fit_report))

    # -- properties of the reference ------------------------------------------------------------

    @property
    def quantiles(self) -> list:
        """The model's quantile levels."""
        return list(self._native.quantiles)

    @property
    def model_context_length(self) -> int:
        return self._native.model_context_length

    @property
    def model_output_patch_size(self) -> int:
        return self._native.model_output_patch_size

    @property
    def model_prediction_length(self) -> int:
        return self._native.max_output_patches * self._native.model_output_patch_size

    @property
    def max_output_patches(self) -> int:
        return self._native.max_output_patches

    @property
    def backend(self) -> str:
        """The route that ran the last call (a backend name, ``+compile`` when compiled); before any call,
        the backend asked for (``auto`` picks per call)."""
        return self._last_backend or self._native.requested_backend

    @property
    def requested_backend(self) -> str:
        return self._native.requested_backend

    @property
    def model_dir(self) -> str:
        return self._native.model_dir

    def __repr__(self) -> str:
        return f"Chronos2Pipeline(model_dir={self.model_dir!r}, backend={self.requested_backend!r})"

    # -- fine-tuning ------------------------------------------------------------------------------

    def fit(
        self,
        inputs: Any,
        prediction_length: int,
        validation_inputs: Any = None,
        finetune_mode: str = "full",
        lora_config: Any = None,
        context_length: Optional[int] = None,
        learning_rate: float = 1e-6,
        num_steps: int = 1000,
        batch_size: int = 256,
        output_dir: Any = None,
        min_past: Optional[int] = None,
        finetuned_ckpt_name: str = "finetuned-ckpt",
        callbacks: Optional[list] = None,
        remove_printer_callback: bool = False,
        disable_data_parallel: bool = True,
        seed: int = 0,
        quantize: Optional[str] = None,
        **extra_trainer_kwargs: Any,
    ) -> "Chronos2Pipeline":
        """Fine-tunes a copy of the model on ``inputs`` and returns a new pipeline, as the reference's
        ``fit``: the same sampling, loss, AdamW with a linear schedule, validation every 100 steps with
        the best step kept, and the same defaults. ``inputs`` / ``validation_inputs`` take the forms of
        :meth:`predict`; future covariate keys mark known-future covariates (their values are taken from
        the series while training). ``finetune_mode``: ``full`` or ``lora`` as the reference, and also
        ``qlora`` (LoRA on a base held in int8, or int4 with ``quantize="int4"``) and ``head`` (only
        ``output_patch_embedding``). ``lora_config``: a dict of peft ``LoraConfig`` arguments or a
        ``LoraConfig`` (plain LoRA: r, lora_alpha, target_modules); default r=8, alpha=16 on the
        attention projections and the output layer, as the reference. A ``lora_config`` without
        ``target_modules`` targets peft's default modules for the model's ``model_type`` (t5: ``q``,
        ``v``), as the reference does through peft.

        Writes to ``output_dir / finetuned_ckpt_name`` (``output_dir`` defaults to
        ``chronos-2-finetuned/<date>_<time>``): a full model (``config.json`` + ``model.safetensors``),
        a PEFT adapter (lora, qlora) or a head, each loadable by the reference. An existing directory
        is written over, as the reference's ``save_pretrained`` (its checkpoint files are replaced,
        its other files stay); on an error it is left unchanged, and no new directory is left behind.
        Ctrl-C stops training between steps (``KeyboardInterrupt``). The returned pipeline runs on this pipeline's
        backend and precision, with an adapter fused into its weights; ``fit_report`` holds the
        run's losses. Trains on the backend this pipeline was loaded on when it was forced, else on the
        default backend (the first ``chronos2 info`` lists). A progress line goes to stderr every 100 steps unless
        ``remove_printer_callback``. ``seed`` seeds the sampling, the LoRA initialisation and dropout.
        ``callbacks`` and ``TrainingArguments`` keywords are not supported (an error);
        ``disable_data_parallel`` has no effect (one process)."""
        _finetune.refuse_trainer_options(callbacks, extra_trainer_kwargs)
        if finetune_mode == "full" and lora_config is not None:
            raise ValueError(
                "lora_config should not be specified when `finetune_mode='full'`. To enable LoRA, set "
                "`finetune_mode='lora'`."
            )
        prediction_length = count("prediction_length", prediction_length)
        num_steps = count("num_steps", num_steps)
        batch_size = count("batch_size", batch_size)
        context_length = optional_count("context_length", context_length)
        min_past = optional_count("min_past", min_past)
        seed = count("seed", seed, minimum=0)
        learning_rate = positive_float("learning_rate", learning_rate)
        if quantize is not None and str(finetune_mode).strip() != "qlora":
            raise ValueError(f"quantize={quantize!r} applies to finetune_mode='qlora' only")
        lora = _finetune.lora_settings(lora_config, self._model_type())
        items = _inputs.to_items(inputs, prediction_length)
        validation = None if validation_inputs is None else _inputs.to_items(validation_inputs, prediction_length)
        target = _finetune.checkpoint_dir(output_dir, finetuned_ckpt_name)
        created = _finetune.missing_parents(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            native, report = self._native.fit(
                items,
                validation,
                prediction_length,
                str(finetune_mode),
                None if quantize is None else str(quantize),
                str(target),
                num_steps,
                learning_rate,
                batch_size,
                context_length,
                min_past,
                lora,
                seed,
                0 if remove_printer_callback else 100,
            )
        except BaseException:
            for directory in created:
                try:
                    directory.rmdir()  # only the empty directories made above
                except OSError:
                    break
            raise
        if report["dropped"]:
            warnings.warn(
                f"{report['dropped']} series shorter than min_past + prediction_length were dropped", stacklevel=2
            )
        kind = "model" if str(finetune_mode).strip() == "full" else "adapter"
        pipeline = Chronos2Pipeline(native, _pickling.fitted(self._source, kind, target.resolve()))
        pipeline.fit_report = report
        return pipeline

    def _model_type(self) -> Optional[str]:
        """``model_type`` of the model's ``config.json`` (``t5`` for Chronos-2)."""
        config = Path(self.model_dir) / "config.json"
        return json.loads(config.read_text()).get("model_type") if config.is_file() else None

    # -- arrays -----------------------------------------------------------------------------------

    def _predict_native(
        self,
        inputs: Any,
        prediction_length: Optional[int],
        quantile_levels: Optional[list],
        batch_size: int,
        context_length: Optional[int],
        cross_learning: bool,
        limit_prediction_length: bool,
        kwargs: dict,
    ) -> tuple:
        if kwargs.get("predict_batches_jointly") is not None:
            warnings.warn(
                "The `predict_batches_jointly` argument is deprecated and will be removed in a future version. "
                "Please use `cross_learning=True` to enable the cross-learning mode.",
                category=FutureWarning,
                stacklevel=3,
            )
            cross_learning = kwargs.pop("predict_batches_jointly")
        max_output_patches = kwargs.pop("max_output_patches", None)
        unrolled_quantiles = kwargs.pop("unrolled_quantiles", None)
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {list(kwargs.keys())}.")
        if prediction_length is None:
            prediction_length = self.model_prediction_length
        prediction_length = count("prediction_length", prediction_length)
        batch_size = count("batch_size", batch_size)
        context_length = optional_count("context_length", context_length)
        if prediction_length > self.model_prediction_length and limit_prediction_length:
            raise ValueError(
                f"We recommend keeping prediction length <= {self.model_prediction_length}. "
                "The quality of longer predictions may degrade since the model is not optimized for it. "
                "You can turn off this check by setting `limit_prediction_length=False`."
            )
        if unrolled_quantiles is not None and not set(unrolled_quantiles).issubset(self.quantiles):
            raise ValueError(
                f"Unrolled quantiles must be a subset of the model's quantiles. "
                f"Found: unrolled_quantiles={unrolled_quantiles}, model_quantiles={self.quantiles}"
            )
        items = _inputs.to_items(inputs, prediction_length)
        quantiles, median, route, messages = self._native.predict(
            items,
            prediction_length=prediction_length,
            quantile_levels=None if quantile_levels is None else [float(q) for q in quantile_levels],
            batch_size=batch_size,
            context_length=context_length,
            cross_learning=bool(cross_learning),
            max_output_patches=max_output_patches,
            unrolled_quantiles=None if unrolled_quantiles is None else [float(q) for q in unrolled_quantiles],
        )
        self._last_backend = route
        _warn(messages)
        return quantiles, median

    def predict(
        self,
        inputs: Any,
        prediction_length: Optional[int] = None,
        batch_size: int = 256,
        context_length: Optional[int] = None,
        cross_learning: bool = False,
        limit_prediction_length: bool = False,
        **kwargs: Any,
    ) -> list:
        """Forecasts at the model's quantile levels: a list with, per input series, an array of shape
        ``(n_variates, n_quantiles, prediction_length)`` (float32). ``inputs``: a 3-D array
        ``(n_series, n_variates, T)``, a list of 1-D / 2-D arrays, or a list of dicts with ``target``,
        ``past_covariates`` and ``future_covariates``; torch tensors are read as the reference reads
        them (detached, bfloat16 as float32). Ctrl-C stops the call between batches
        (``KeyboardInterrupt``). Extra options: ``max_output_patches``,
        ``unrolled_quantiles`` (as the reference)."""
        quantiles, _ = self._predict_native(
            inputs, prediction_length, None, batch_size, context_length, cross_learning,
            limit_prediction_length, dict(kwargs),
        )
        return [np.swapaxes(q, 1, 2) for q in quantiles]

    def predict_quantiles(
        self,
        inputs: Any,
        prediction_length: Optional[int] = None,
        quantile_levels: list = DEFAULT_QUANTILE_LEVELS,
        **predict_kwargs: Any,
    ) -> tuple:
        """``(quantiles, mean)``: per input series ``(n_variates, prediction_length, len(quantile_levels))``
        and ``(n_variates, prediction_length)``; levels that are not model levels are interpolated,
        and ``mean`` is the median, as in the reference."""
        kwargs = dict(predict_kwargs)
        batch_size = kwargs.pop("batch_size", 256)
        context_length = kwargs.pop("context_length", None)
        cross_learning = kwargs.pop("cross_learning", False)
        limit = kwargs.pop("limit_prediction_length", False)
        return self._predict_native(
            inputs, prediction_length, list(quantile_levels), batch_size, context_length, cross_learning, limit, kwargs
        )

    def embed(self, inputs: Any, batch_size: int = 256, context_length: Optional[int] = None) -> tuple:
        """``(embeddings, loc_scale)``: per input series an array ``(n_variates, num_patches + 2, d_model)``
        and a tuple ``(loc, scale)`` of arrays ``(n_variates, 1)``."""
        batch_size = count("batch_size", batch_size)
        context_length = optional_count("context_length", context_length)
        if context_length is not None and context_length > self.model_context_length:
            warnings.warn(
                f"The specified context_length {context_length} is greater than the model's default context "
                f"length {self.model_context_length}. Resetting context_length to {self.model_context_length}.",
                stacklevel=2,
            )
        items = _inputs.to_items(inputs, 0)
        embeddings, loc_scale, route = self._native.embed(items, batch_size=batch_size, context_length=context_length)
        self._last_backend = route
        return embeddings, loc_scale

    # -- DataFrames -------------------------------------------------------------------------------

    def predict_df(
        self,
        df: Any,
        future_df: Any = None,
        id_column: str = "item_id",
        timestamp_column: str = "timestamp",
        target: Union[str, list] = "target",
        prediction_length: Optional[int] = None,
        quantile_levels: list = DEFAULT_QUANTILE_LEVELS,
        batch_size: int = 256,
        context_length: Optional[int] = None,
        cross_learning: bool = False,
        validate_inputs: bool = True,
        freq: Optional[str] = None,
        **predict_kwargs: Any,
    ) -> pd.DataFrame:
        """Forecasts every series of a long-format table (pandas, polars or pyarrow; other columns are
        covariates, known-future when ``future_df`` has them). Returns a pandas DataFrame with the
        columns ``[id_column, timestamp_column, "target_name", "predictions", str(q)...]``, rows ordered
        (item in first-appearance order, target, step) — the reference's layout and dtypes. Inputs are
        always validated (``validate_inputs`` is accepted for compatibility)."""
        if predict_kwargs:
            raise TypeError(f"Unexpected keyword arguments: {list(predict_kwargs.keys())}.")
        targets = [target] if isinstance(target, str) else list(target)
        if prediction_length is None:
            prediction_length = self.model_prediction_length
        prediction_length = count("prediction_length", prediction_length)
        batch_size = count("batch_size", batch_size)
        context_length = optional_count("context_length", context_length)
        levels = list(quantile_levels)
        start = time.perf_counter()
        table = _frames.to_arrow(df, "df", id_column)
        future_table = None if future_df is None else _frames.to_arrow(future_df, "future_df", id_column)
        result = self._native.predict_df(
            _frames.columns(table),
            None if future_table is None else _frames.columns(future_table),
            id_column,
            timestamp_column,
            targets,
            prediction_length,
            [float(q) for q in levels],
            batch_size,
            context_length,
            bool(cross_learning),
            None if freq is None else str(freq),
        )
        converted = time.perf_counter()
        self._last_backend = result["route"]
        _warn(result["warnings"])
        out = _frames.forecast_frame(df, table, result, id_column, timestamp_column, targets, prediction_length)
        end = time.perf_counter()
        self.last_timings = {
            "prepare_s": converted - start - result["model_s"],
            "model_s": result["model_s"],
            "output_s": end - converted,
            "total_s": end - start,
        }
        return out

    def embed_df(
        self,
        df: Any,
        id_column: str = "item_id",
        timestamp_column: str = "timestamp",
        target: Union[str, list] = "target",
        batch_size: int = 256,
        context_length: Optional[int] = None,
        pooling: str = "reg_token",
    ) -> pd.DataFrame:
        """Embeds every (series, target) of a long-format table (other columns are past covariates).
        Returns a pandas DataFrame ``[id_column, "target_name", "loc", "scale", "embedding"]`` with one
        row per (series, target); ``embedding`` holds a ``(d_model,)`` array, or ``(num_patches + 2, d_model)``
        for ``pooling="all"`` (``reg_token``, ``mean_context``, ``last_context_patch``, ``all``)."""
        targets = [target] if isinstance(target, str) else list(target)
        batch_size = count("batch_size", batch_size)
        context_length = optional_count("context_length", context_length)
        table = _frames.to_arrow(df, "df", id_column)
        result = self._native.embed_df(
            _frames.columns(table),
            id_column,
            timestamp_column,
            targets,
            batch_size,
            context_length,
            str(pooling),
        )
        self._last_backend = result["route"]
        return _frames.embedding_frame(df, table, result, id_column)
