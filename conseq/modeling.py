"""Load a seq2seq model and tokenizer from a hub id or a local folder, or build the small from-scratch BART
that the embedded default uses (``model=tiny``).

Every model conseq writes is a plain ``save_pretrained`` folder, so ``AutoModelForSeq2SeqLM`` and
``pipeline("summarization")`` load it; the tiny model is built here once and then goes through the same
``from_pretrained`` path as ``facebook/bart-large``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    MBartConfig,
    MBartForConditionalGeneration,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

log = logging.getLogger(__name__)

# The QA separator: QAGen's targets are "question<sep>answer</s>". The original used an unused GPT-2 BPE id
# (" strutConnector"); a dedicated special token cannot collide with text and survives any tokenizer.
SEP_TOKEN = "<sep>"
# BART's special tokens, in BART's id order, so the tiny model and bart-large agree on bos=0, pad=1, eos=2.
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", SEP_TOKEN]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, model_max_length: int = 512):
    """Train a byte-level BPE tokenizer (GPT-2/BART style) that frames text as ``<s> … </s>`` like BART's."""
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS)
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=[SEP_TOKEN],
        model_max_length=model_max_length,
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    d_model: int = 256,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    attention_heads: int = 4,
    ffn_dim: int = 1024,
    max_position_embeddings: int = 512,
    dropout: float = 0.1,
    scale_embedding: bool = False,
    init_std: float | None = None,
    arch: str = "bart",
    seed: int = 0,
) -> BartForConditionalGeneration:
    """A randomly initialised BART with bart-large's conventions (decoder starts from </s>, forced <s>).

    ``arch="mbart"`` builds the same shape with mBART's pre-LayerNorm blocks.

    ``init_std`` (default ``d_model ** -0.5``, as Xavier/T5 scale it) replaces BART's fixed 0.02, which is
    tuned for d_model 1024: at d_model 128 the attention logits start ~10x too flat, every encoder position
    gets the same gradient through the uniform cross-attention, and the encoder collapses to one constant
    vector (the decoder then never reads the source: measured, shuffled documents gave the same loss).
    """
    import torch

    config_class, model_class = _ARCHS[arch]
    config = config_class(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=max_position_embeddings,
        dropout=dropout,
        attention_dropout=dropout,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        # bart-large's choice; scaling by sqrt(d_model) drowns the learned positions of a small model.
        scale_embedding=scale_embedding,
        init_std=d_model**-0.5 if init_std is None else init_std,
    )
    torch.manual_seed(seed)
    model = model_class(config)
    # transformers 5 reads decoding defaults from generation_config only, not from the model config.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    return model


_ARCHS = {
    "bart": (BartConfig, BartForConditionalGeneration),
    "mbart": (MBartConfig, MBartForConditionalGeneration),
}


def load_model(name_or_path: str, *, add_sep: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a seq2seq model and its tokenizer from a hub id or a ``save_pretrained`` folder.

    ``add_sep`` adds the QA separator to a tokenizer that lacks it (a pretrained BART becoming a QAGen model)
    and resizes the embeddings to match.
    """
    local = Path(name_or_path)
    if (name_or_path.startswith((".", "/")) or local.exists()) and not (local / "config.json").exists():
        raise FileNotFoundError(
            f"no model at {name_or_path!r}: expected a save_pretrained folder with config.json "
            "(or give a hub id such as facebook/bart-large)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
    except OSError as err:
        raise OSError(
            f"could not load model {name_or_path!r}: {err}. A hub id needs network access (or a warm "
            "HF cache); offline, point model.name_or_path at a local folder."
        ) from err
    if add_sep:
        ensure_sep_token(model, tokenizer)
    return model, tokenizer


def ensure_sep_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Return the id of the QA separator, adding it (and resizing embeddings) if the tokenizer lacks it."""
    if SEP_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [SEP_TOKEN]})
        model.resize_token_embeddings(len(tokenizer))
        log.info("added %s to the tokenizer (vocabulary now %d)", SEP_TOKEN, len(tokenizer))
    return tokenizer.convert_tokens_to_ids(SEP_TOKEN)


def initial_model(
    name_or_path: str | None, dims: dict, tokenizer_dir: str | None, *, add_sep: bool = False, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model a training stage starts from: a pretrained checkpoint, or the tiny BART built from scratch
    on the cached tokenizer (then saved and reloaded by path by every later stage)."""
    if name_or_path:
        return load_model(name_or_path, add_sep=add_sep)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return build_tiny_model(tokenizer, seed=seed, **dims), tokenizer


def build_tiny_head_model(auto_class, tokenizer: PreTrainedTokenizerBase, *, seed: int = 0, **dims):
    """A from-scratch BART (or mBART, ``arch``) with another head, chosen by a transformers auto class
    (``AutoModelForQuestionAnswering``: QAGS's QA model; ``AutoModelForSequenceClassification``: the FactCC
    classifier), with the shape and token conventions of ``build_tiny_model``. Config fields beyond the
    dimensions (``id2label``…) go in ``dims`` too."""
    import torch

    shape = {k: dims.pop(k) for k in list(dims) if k in build_tiny_model.__kwdefaults__}
    config = build_tiny_model(tokenizer, **shape).config
    for key, value in dims.items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    return auto_class.from_config(config)
