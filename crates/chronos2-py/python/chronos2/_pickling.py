"""Pickling of ``Chronos2Pipeline`` (``pickle``, ``copy.deepcopy``, Ray, multiprocessing, joblib).

A pipeline remembers its *source*:

- ``("pretrained", model, backend, quantize, dtype)``: loaded by ``from_pretrained``; pickled by
  reference (the model's absolute path, hub id or ``None`` for the bundled one, and the options)
  and loaded again when unpickled;
- ``("fitted", base, kind, directory)``: returned by ``fit`` (``kind``: ``"model"`` for a full
  fine-tune, ``"adapter"`` for LoRA / QLoRA / head, fused into ``base``); pickled by value: the
  files of the checkpoint ``fit`` wrote are read when pickling, so the pickle can be loaded on
  another machine. Unpickling writes them to a private temporary directory, removed when the
  pipeline is garbage-collected.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Optional


def pretrained(model: Optional[str], backend: str, quantize: Optional[str], dtype: Optional[str]) -> tuple:
    return ("pretrained", model, backend, quantize, dtype)


def fitted(base: Optional[tuple], kind: str, directory: Any) -> Optional[tuple]:
    return None if base is None else ("fitted", base, kind, str(directory))


def state(source: Optional[tuple]) -> tuple:
    """What a pickle holds: ``source`` with each fitted checkpoint read into memory."""
    if source is None:
        raise TypeError("cannot pickle a Chronos2Pipeline that was not made by from_pretrained or fit")
    if source[0] in ("pretrained", "files"):
        return source
    _, base, kind, directory = source
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(
            f"cannot pickle this fine-tuned Chronos2Pipeline: its checkpoint directory {path} (written by fit) "
            "is gone"
        )
    files = {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
    return ("files", state(base), kind, files)


def _options(state: tuple) -> tuple:
    """(backend, quantize, dtype) of the pretrained model a state starts from."""
    return state[2:] if state[0] == "pretrained" else _options(state[1])


def _build(state: tuple):
    from ._native import NativeModel
    from .pipeline import Chronos2Pipeline

    if state[0] == "pretrained":
        _, model, backend, quantize, dtype = state
        return Chronos2Pipeline(NativeModel.load(model, backend, quantize, dtype), state)
    _, base_state, kind, files = state
    directory = Path(tempfile.mkdtemp(prefix="chronos2-unpickled-"))
    try:
        for name, data in files.items():
            (directory / name).write_bytes(data)
        if kind == "adapter":
            base = _build(base_state)
            native = base._native.with_adapter(str(directory))
            source = fitted(base._source, kind, directory)
        else:
            native = NativeModel.load(str(directory), *_options(base_state))
            source = fitted(base_state, kind, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    pipeline = Chronos2Pipeline(native, source)
    weakref.finalize(pipeline, shutil.rmtree, str(directory), True)
    return pipeline


def restore(state: tuple, fit_report: Optional[dict]):
    """The pipeline a pickle holds (``state`` from :func:`state`)."""
    pipeline = _build(state)
    pipeline.fit_report = fit_report
    return pipeline
