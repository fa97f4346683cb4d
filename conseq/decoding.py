"""Batched summary decoding (beam search, top-k / nucleus sampling) with length-sorted batches.

Used by validation, the generate stage and evaluate. Outputs come back in input order; a batch is padded only
to its own longest source.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


def generate_texts(
    model,
    tokenizer,
    texts: list[str],
    *,
    max_source_length: int,
    batch_size: int = 32,
    num_beams: int = 4,
    do_sample: bool = False,
    top_k: int = 50,
    top_p: float = 1.0,
    temperature: float = 1.0,
    num_return_sequences: int = 1,
    num_beam_groups: int = 1,
    diversity_penalty: float = 0.0,
    min_new_tokens: int = 0,
    max_new_tokens: int = 64,
    seed: int | None = None,
    progress: bool = False,
) -> list[list[str]]:
    """Decode ``num_return_sequences`` outputs per text. ``seed`` fixes sampling for this call as a whole, so a
    caller that needs shard-independent samples calls once per fixed shard."""
    if not texts:
        return []
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    encoded = tokenizer(texts, truncation=True, max_length=max_source_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]), reverse=True)
    outputs: list[list[str]] = [[] for _ in texts]
    options = dict(
        do_sample=do_sample,
        num_beams=1 if do_sample else num_beams,
        num_return_sequences=num_return_sequences,
        min_new_tokens=min_new_tokens,
        max_new_tokens=max_new_tokens,
    )
    if do_sample:
        options.update(top_k=top_k, top_p=top_p, temperature=temperature)
    if num_beam_groups > 1:
        raise ValueError(
            "transformers 5 removed group beam search from generate(); use conseq.generation.diverse_beam_search"
        )
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="decode", disable=not progress, leave=False):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
            generated = model.generate(**batch, **options)
            decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
            for j, i in enumerate(idx):
                chunk = decoded[j * num_return_sequences : (j + 1) * num_return_sequences]
                outputs[i] = [text.strip() for text in chunk]
    model.train(was_training)
    return outputs
