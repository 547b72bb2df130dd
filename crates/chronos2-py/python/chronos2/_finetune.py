"""The reference's ``Chronos2Pipeline.fit`` arguments for the native fine-tuning call: the LoRA
configuration (a dict or a peft ``LoraConfig``), the output directory, and the Trainer options that
have no counterpart here (refused with a message rather than ignored)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

DEFAULT_OUTPUT_ROOT = "chronos-2-finetuned"

# peft's default target modules per model_type (peft.utils.constants.
# TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), for the model types of Chronos-2 checkpoints.
_PEFT_DEFAULT_TARGETS = {"t5": ["q", "v"], "mt5": ["q", "v"]}

# peft.LoraConfig's defaults for the keys a dict may give.
_PEFT_DEFAULTS = {"r": 8, "lora_alpha": 8, "target_modules": None, "lora_dropout": 0.0, "bias": "none"}

# peft.LoraConfig options that change what LoRA computes, with the value that keeps plain LoRA.
_PLAIN_LORA = {
    "use_rslora": False,
    "use_dora": False,
    "modules_to_save": None,
    "layers_to_transform": None,
    "rank_pattern": {},
    "alpha_pattern": {},
}


def lora_settings(lora_config: Any, model_type: Optional[str]) -> Optional[tuple]:
    """``(rank, alpha, targets)`` of ``lora_config`` (``None``: the defaults of ``fit``), read as
    peft's ``LoraConfig`` reads it: a dict of its arguments or a ``LoraConfig`` object; without
    ``target_modules``, peft's default for ``model_type``."""
    if lora_config is None:
        return None
    if isinstance(lora_config, Mapping):
        unknown = sorted(set(lora_config) - set(_PEFT_DEFAULTS))
        if unknown:
            raise ValueError(
                f"lora_config: unsupported keys {unknown} (supported: r, lora_alpha, target_modules, "
                "lora_dropout=0, bias='none')"
            )
        settings = {**_PEFT_DEFAULTS, **lora_config}
    else:
        settings = {key: getattr(lora_config, key, default) for key, default in _PEFT_DEFAULTS.items()}
        for key, plain in _PLAIN_LORA.items():
            value = getattr(lora_config, key, plain)
            if value != plain and not (plain in (None, {}) and not value):
                raise ValueError(f"lora_config.{key}={value!r} is not supported (plain LoRA only)")
    targets = settings["target_modules"]
    if targets is None:
        targets = _PEFT_DEFAULT_TARGETS.get(str(model_type))
        if targets is None:
            raise ValueError(
                f"lora_config has no target_modules, and peft has no default for model_type {model_type!r} "
                f"(it has for {sorted(_PEFT_DEFAULT_TARGETS)}); give target_modules"
            )
    if isinstance(targets, str):
        raise ValueError(
            "lora_config target_modules as a regular expression string is not supported; give a list of "
            "module name suffixes"
        )
    if float(settings["lora_dropout"]) != 0.0:
        raise ValueError(f"lora_config lora_dropout={settings['lora_dropout']} is not supported (LoRA without dropout)")
    if settings["bias"] != "none":
        raise ValueError(f"lora_config bias={settings['bias']!r} is not supported (bias='none' only)")
    rank = int(settings["r"])
    if rank < 1:
        raise ValueError(f"lora_config r must be at least 1, got {rank}")
    return rank, float(settings["lora_alpha"]), [str(t) for t in targets]


def checkpoint_dir(output_dir: Any, finetuned_ckpt_name: str) -> Path:
    """Where ``fit`` writes: ``output_dir / finetuned_ckpt_name``, ``output_dir`` defaulting to
    ``chronos-2-finetuned/<date>_<time>`` as the reference. An existing directory is written over
    (as the reference); a file there is an error."""
    root = Path(DEFAULT_OUTPUT_ROOT) / time.strftime("%Y-%m-%d_%H-%M-%S") if output_dir is None else Path(output_dir)
    target = root / str(finetuned_ckpt_name)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory; choose another output_dir or finetuned_ckpt_name")
    return target


def missing_parents(path: Path) -> list:
    """The directories above ``path`` that do not exist yet, deepest first."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return missing


def refuse_trainer_options(callbacks: Any, extra_trainer_kwargs: dict) -> None:
    """Hugging Face ``TrainerCallback``s and ``TrainingArguments`` have no counterpart here."""
    if callbacks:
        raise ValueError(
            "callbacks (transformers TrainerCallbacks) are not supported: chronos2 trains without the "
            "Hugging Face Trainer"
        )
    if extra_trainer_kwargs:
        raise TypeError(
            f"Unexpected keyword arguments: {sorted(extra_trainer_kwargs)} (TrainingArguments options are "
            "not supported; chronos2 trains with fit's settings)"
        )
