"""The reference's input forms of ``predict`` / ``embed`` -> items for the native module.

Accepted (as ``Chronos2Pipeline.predict`` of chronos-forecasting 2.3.2, plus bare 1-D / 2-D arrays):
- a 3-D array ``(n_series, n_variates, history_length)``; a 2-D array ``(n_series, history_length)``
  or a 1-D array ``(history_length,)`` of univariate series;
- a list of 1-D ``(history_length,)`` / 2-D ``(n_variates, history_length)`` arrays (lengths may differ);
- a list of dicts with ``target`` and optional ``past_covariates`` / ``future_covariates``.

Arrays are converted with ``np.asarray`` and kept as they are when they are already C-contiguous
float32; the native module reads them in place. Torch tensors are read as the reference reads
them: detached (``requires_grad``), moved to the CPU, and in float32 when their dtype has no numpy
counterpart (bfloat16).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

PAST_ONLY, KNOWN_UNAVAILABLE, KNOWN = 0, 1, 2


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def as_array(x: Any) -> np.ndarray:
    """``np.asarray(x)``; a torch tensor is detached and moved to the CPU first, and a bfloat16
    tensor (numpy has no bfloat16) converted to float32, which holds its values exactly."""
    if _is_torch_tensor(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _numeric(x: Any, what: str) -> np.ndarray:
    try:
        arr = as_array(x)
    except Exception as e:  # ragged nested lists and the like
        raise ValueError(f"{what} cannot be read as an array: {e}") from None
    if arr.dtype.kind not in "biuf":
        example = ""
        if arr.dtype.kind in "OUS" and arr.size:
            bad = next((v for v in arr.ravel() if not isinstance(v, (int, float, np.number))), None)
            if bad is not None:
                example = f" (e.g. {bad!r})"
        raise ValueError(f"{what} must hold numbers, found an array of dtype {arr.dtype}{example}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _is_array(x: Any) -> bool:
    return hasattr(x, "__array__") and not isinstance(x, (list, tuple, Mapping, str))


def _check_history(arr: np.ndarray, what: str) -> None:
    if arr.shape[-1] == 0:
        raise ValueError(f"{what} has no time steps (history_length 0)")


def _from_array(inputs: Any) -> list[tuple]:
    arr = _numeric(inputs, "inputs")
    if arr.ndim == 1:
        arr = arr.reshape(1, 1, -1)
    elif arr.ndim == 2:
        arr = arr.reshape(arr.shape[0], 1, arr.shape[1])
    elif arr.ndim != 3:
        raise ValueError(
            f"Expected 3-d tensor with shape (n_series, n_variates, history_length) (or a 1-d / 2-d array of "
            f"univariate series), got shape {tuple(arr.shape)}."
        )
    if arr.shape[0] == 0:
        raise ValueError("`inputs` is empty. Please provide at least one time series.")
    _check_history(arr, "inputs")
    return [(arr[i], []) for i in range(arr.shape[0])]


def _from_list_of_arrays(inputs: list) -> list[tuple]:
    items = []
    for idx, x in enumerate(inputs):
        if not _is_array(x) and not isinstance(x, (list, tuple)):
            raise ValueError(f"element at index {idx} is a {type(x).__name__}, expected an array or a dict")
        arr = _numeric(x, f"element at index {idx}")
        if arr.ndim == 0 or arr.ndim > 2:
            raise ValueError(
                f"Each element should be 1-d or 2-d, with shape (history_length,) or "
                f"(n_variates, history_length). Found element at index {idx} with shape {tuple(arr.shape)}."
            )
        _check_history(arr, f"element at index {idx}")
        items.append((arr.reshape(-1, arr.shape[-1]), []))
    return items


def _is_unavailable(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _validate_dicts(data: list, prediction_length: int) -> None:
    """The reference's ``_validate_list_of_dicts`` checks, with its messages."""
    allowed = {"target", "past_covariates", "future_covariates"}
    for idx, d in enumerate(data):
        if not isinstance(d, Mapping):
            raise ValueError(f"element at index {idx} is a {type(d).__name__}, but element 0 is a dict")
        keys = set(d.keys())
        if not keys.issubset(allowed):
            raise ValueError(
                f"Found invalid keys in element at index {idx}. Allowed keys are {allowed}, but found {keys}"
            )
        if "target" not in keys:
            raise ValueError(f"Element at index {idx} does not contain the required key 'target'")
        target = _numeric(d["target"], f"`target` of element at index {idx}")
        if target.ndim == 0 or target.ndim > 2:
            raise ValueError(
                f"Target must be 1-d or 2-d (got shape {tuple(target.shape)} at index {idx}). "
                f"When the input is a list of dicts, the `target` should either be 1-d with shape "
                f"(history_length,) or 2-d with shape (n_variates, history_length)."
            )
        history_length = target.shape[-1]
        for group, length, label in (
            ("past_covariates", history_length, "the length of `target`"),
            ("future_covariates", prediction_length, "the prediction_length"),
        ):
            cov = d.get(group, {})
            if not isinstance(cov, Mapping):
                raise ValueError(
                    f"Found invalid type for `{group}` in element at index {idx}. "
                    f'Expected dict with {{"feat_1": tensor_1, ...}}, but found {type(cov)}'
                )
            for key, val in cov.items():
                if group == "future_covariates" and _is_unavailable(val):
                    continue
                arr = as_array(val)
                if arr.ndim != 1 or len(arr) != length:
                    raise ValueError(
                        f"Individual `{group}` must be 1-d with length equal to {label} (= {length}), "
                        f"found: {key} with shape {tuple(arr.shape)} in element at index {idx}"
                    )
    first = data[0]
    first_target = as_array(first["target"])
    first_n = 1 if first_target.ndim == 1 else first_target.shape[0]
    first_past = sorted(first.get("past_covariates", {}).keys())
    first_future = sorted(first.get("future_covariates", {}).keys())
    if not set(first_future).issubset(first_past):
        raise ValueError(
            f"Expected keys in `future_covariates` must be a subset of `past_covariates` {first_past}, "
            f"but found {first_future}"
        )
    availability = {k: _is_unavailable(first["future_covariates"][k]) for k in first_future}
    for idx, d in enumerate(data):
        target = as_array(d["target"])
        n = 1 if target.ndim == 1 else target.shape[0]
        if n != first_n:
            raise ValueError(
                f"All targets must have the same n_targets. Expected {first_n}, got {n} at index {idx}. "
                f"Heterogeneous lists with different target shapes are not supported — "
                f"please loop over the inputs and call the model per-item instead."
            )
        past = sorted(d.get("past_covariates", {}).keys())
        if past != first_past:
            raise ValueError(
                f"All past_covariates must have same keys. Expected {first_past}, got {past} at index {idx}. "
                f"Heterogeneous lists are not supported."
            )
        future = d.get("future_covariates", {})
        if sorted(future.keys()) != first_future:
            raise ValueError(
                f"All future_covariates must have same keys. Expected {first_future}, "
                f"got {sorted(future.keys())} at index {idx}. Heterogeneous lists are not supported."
            )
        for key in first_future:
            if _is_unavailable(future[key]) != availability[key]:
                raise ValueError(
                    f"All dicts must agree on whether `future_covariates['{key}']` is available "
                    f"(None/empty) or provided. Mismatch at index {idx}."
                )


def _labels(values: np.ndarray) -> list:
    """Category labels: missing values (None, NaN) are None, the rest their text."""
    out = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
        else:
            out.append(str(v))
    return out


def _from_dicts(data: list, prediction_length: int) -> list[tuple]:
    _validate_dicts(data, prediction_length)
    first = data[0]
    past_keys = sorted(first.get("past_covariates", {}).keys())
    future_keys = set(first.get("future_covariates", {}).keys())
    # As the reference: a covariate is numeric when its past values stacked over all items are.
    categorical = set()
    for key in past_keys:
        if not all(np.issubdtype(as_array(d["past_covariates"][key]).dtype, np.number) for d in data):
            categorical.add(key)

    def values(v: Any, key: str) -> Any:
        arr = as_array(v)
        if key in categorical:
            return _labels(arr)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def future_values(v: Any, key: str) -> Any:
        # Future values keep their own kind: text in the future of a numeric covariate is read
        # as numbers, numbers in the future of a categorical one are unseen categories (both
        # by the native layer, as the reference does).
        arr = as_array(v)
        if np.issubdtype(arr.dtype, np.number):
            return np.ascontiguousarray(arr, dtype=np.float32)
        return _labels(arr)

    items = []
    for d in data:
        target = np.ascontiguousarray(as_array(d["target"]), dtype=np.float32)
        target = target.reshape(-1, target.shape[-1])
        _check_history(target, "target")
        covariates = []
        for key in past_keys:
            past = values(d["past_covariates"][key], key)
            if key not in future_keys:
                covariates.append((key, past, PAST_ONLY, None))
            elif _is_unavailable(d["future_covariates"][key]):
                covariates.append((key, past, KNOWN_UNAVAILABLE, None))
            else:
                covariates.append((key, past, KNOWN, future_values(d["future_covariates"][key], key)))
        items.append((target, covariates))
    return items


def to_items(inputs: Any, prediction_length: int) -> list[tuple]:
    """Items ``(targets (n_targets, T) float32, covariates)`` for the native predict / embed."""
    if _is_array(inputs):
        return _from_array(inputs)
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__len__"):
        raise ValueError(
            f"inputs must be an array, a list of arrays or a list of dicts, found {type(inputs).__name__}"
        )
    if len(inputs) == 0:
        raise ValueError("`inputs` is empty. Please provide at least one time series.")
    inputs = list(inputs)
    if isinstance(inputs[0], Mapping):
        if "context" in inputs[0]:
            raise ValueError("already-prepared inputs (dicts with a 'context' key) are not supported")
        return _from_dicts(inputs, prediction_length)
    return _from_list_of_arrays(inputs)
