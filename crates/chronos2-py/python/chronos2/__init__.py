"""Chronos-2 time-series forecasting on a Rust core, with the API of chronos-forecasting's
``Chronos2Pipeline`` (``predict``, ``predict_quantiles``, ``predict_df``, ``embed``, ``fit``) plus
``embed_df``, and scale-out on Ray (``chronos2.ray.predict_df``).

>>> from chronos2 import Chronos2Pipeline
>>> pipeline = Chronos2Pipeline.from_pretrained()          # the bundled chronos2-mini
>>> forecast = pipeline.predict_df(df, prediction_length=24)

Differences from the reference (chronos-forecasting 2.3.2), all of them (the README has the same
table):

=====================================  ==========================  =====================================
Where                                  Reference                   chronos2
=====================================  ==========================  =====================================
predict / predict_quantiles / embed    torch tensors               numpy float32 arrays, same shapes
from_pretrained(device_map=...)        places the model            accepted and ignored (see backend=)
torch_dtype / dtype                    any torch dtype             float32, bfloat16 or "auto" (the
                                                                   checkpoint's); float16 is an error
fit(callbacks, **TrainingArguments)    Hugging Face Trainer        an error; disable_data_parallel has
                                                                   no effect
fit(lora_config=...)                   any peft LoraConfig         plain LoRA: r, lora_alpha,
                                                                   target_modules (a list; peft's
                                                                   default for the model type when
                                                                   absent); other options are errors
predict_df(validate_inputs=False)      skips validation            inputs are always validated
already-prepared inputs ("context")    accepted                    an error
error types and messages               ValueError/AssertionError   ValueError / TypeError / OSError
                                       with torch's or pandas'     subclasses naming the argument, item
                                       text                        and 0-based row
pickle of a pipeline                   the weights by value        by reference to the model and
                                                                   options (reloaded); a fit result by
                                                                   value
extensions                             --                          backend=, quantize=, qlora / head
                                                                   fine-tuning, embed_df, bare 1-D / 2-D
                                                                   arrays, polars / pyarrow tables
=====================================  ==========================  =====================================
"""

from ._native import calibrate
from .pipeline import DEFAULT_QUANTILE_LEVELS, Chronos2Pipeline

__all__ = ["Chronos2Pipeline", "DEFAULT_QUANTILE_LEVELS", "calibrate"]
