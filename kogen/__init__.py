"""kogen: Korean text generation with GPT-2 (KoGPT2), with ratsnlp's generation API on today's stack.

The six ratsnlp names are importable from here, as ratsnlp exposes them from
ratsnlp.nlpbook.generation.
"""
import logging as _logging
import os

# transformers and tokenizers are chatty about things a student cannot act on
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from transformers.utils import logging as _hf_logging  # noqa: E402

_hf_logging.disable_progress_bar()  # a "Loading weights" bar per from_pretrained is noise in a lesson


class _NoPaddingHint(_logging.Filter):
    """generate() pads rows that already ended and then warns about its own padding; nothing to act on."""

    def filter(self, record):
        return "since your input_ids may be padded" not in record.getMessage()


_logging.getLogger("transformers.modeling_utils").addFilter(_NoPaddingHint())

# The public names, imported when first used (PEP 562): `python -m kogen generate` does not need Lightning (3 s of
# imports through .training), and every CLI command paid for it while this file imported them all.
_WHERE = {"GenerationDataset": "data", "NsmcCorpus": "data", "data_collator": "data",
          "GenerationDeployArguments": "deploy", "load_for_inference": "deploy", "generate": "generation",
          "BUNDLED_MODEL_DIR": "models", "DEFAULT_MODEL": "models", "load_model": "models", "resolve_model": "models",
          "GenerationTask": "training", "GenerationTrainArguments": "training", "get_trainer": "training"}

__version__ = "0.1.0"
__all__ = ["GenerationTrainArguments", "GenerationDeployArguments", "NsmcCorpus", "GenerationDataset",
           "GenerationTask", "get_trainer", "data_collator", "load_model", "resolve_model", "generate",
           "load_for_inference", "BUNDLED_MODEL_DIR", "DEFAULT_MODEL"]


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'kogen' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
