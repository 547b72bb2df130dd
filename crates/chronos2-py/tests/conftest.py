"""Shared helpers: the repository's reference fixtures (tests/fixtures, written by
scripts/generate_fixtures.py with chronos-forecasting 2.3.2) and cached pipelines."""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from chronos2 import Chronos2Pipeline

ROOT = Path(__file__).resolve().parents[3]
CASES = ROOT / "tests" / "fixtures" / "cases"


def cases(kind):
    """All fixture cases of ``kind`` as (name, case), sorted by name; at least one must exist."""
    out = []
    for path in sorted(CASES.glob("*.json")):
        case = json.loads(path.read_text())
        if case["kind"] == kind:
            out.append((path.stem, case))
    assert out, f"no fixture cases of kind {kind!r} in {CASES}"
    return out


@lru_cache(maxsize=None)
def pipeline(model_rel):
    return Chronos2Pipeline.from_pretrained(str(ROOT / model_rel), backend="cpu")


def as_f32(value):
    """A nested JSON list (null = NaN) as a float32 array."""
    return np.array(value, dtype=np.float64).astype(np.float32)


def assert_close(what, actual, expected, rtol):
    """``max|a - e| <= rtol * max|e| + 1e-6`` (as chronos2_core::fixtures), NaN where NaN is expected."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(actual), nan), f"{what}: NaN pattern differs"
    finite = expected[~nan]
    scale = np.abs(finite).max() if finite.size else 0.0
    tol = rtol * scale + 1e-6
    diff = np.abs(actual[~nan] - finite).max() if finite.size else 0.0
    assert diff <= tol, f"{what}: max |diff| {diff} exceeds {tol} (rtol {rtol} x max|expected| {scale})"


@pytest.fixture(scope="session")
def mini():
    return Chronos2Pipeline.from_pretrained()
