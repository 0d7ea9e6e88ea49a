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

from .data import GenerationDataset, NsmcCorpus, data_collator  # noqa: E402
from .deploy import GenerationDeployArguments, load_for_inference  # noqa: E402
from .generation import generate  # noqa: E402
from .models import BUNDLED_MODEL_DIR, DEFAULT_MODEL, load_model, resolve_model  # noqa: E402
from .training import GenerationTask, GenerationTrainArguments, get_trainer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["GenerationTrainArguments", "GenerationDeployArguments", "NsmcCorpus", "GenerationDataset",
           "GenerationTask", "get_trainer", "data_collator", "load_model", "resolve_model", "generate",
           "load_for_inference", "BUNDLED_MODEL_DIR", "DEFAULT_MODEL"]
