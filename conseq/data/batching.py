"""Tokenize (source, target) pairs, group them into length buckets and pad batches to their own max length.

Sequences are kept as plain lists of ids until collation, so a batch is padded to its longest member only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # the label value that the losses and transformers' models skip


@dataclass
class Encoded:
    """Token ids of a set of pairs and how many sequences were cut to fit the length limits.

    ``labels`` is empty when no targets were given.
    """

    input_ids: list[list[int]]
    labels: list[list[int]]
    truncated_sources: int
    truncated_targets: int


def _truncate(sequences: list[list[int]], max_length: int, special_ids: set[int]) -> tuple[list[list[int]], int]:
    """Cut sequences to max_length ids; a final special token (BART's </s>) is kept as the last id, since the
    model was trained to see every sequence end with it."""
    if max_length < 1:
        raise ValueError(f"max length must be >= 1, got {max_length}")
    out, n_truncated = [], 0
    for ids in sequences:
        if len(ids) > max_length:
            n_truncated += 1
            ids = [*ids[: max_length - 1], ids[-1]] if ids[-1] in special_ids else ids[:max_length]
        out.append(ids)
    return out, n_truncated


def encode_pairs(
    tokenizer,
    sources: list[str],
    targets: list[str] | None,
    *,
    max_source_length: int,
    max_target_length: int,
) -> Encoded:
    """Tokenize sources (and targets with ``text_target=``), truncate to the limits and count truncations.

    Truncated sequences keep their final special token (``</s>`` for BART), as the tokenizer's own truncation
    would; the counts let the caller report how much text was cut.
    """
    special_ids = set(tokenizer.all_special_ids)
    # Tokenize in full, then cut: this is how we know which sequences were truncated.
    source_ids = tokenizer(list(sources), truncation=False, verbose=False)["input_ids"]
    input_ids, truncated_sources = _truncate(source_ids, max_source_length, special_ids)
    labels: list[list[int]] = []
    truncated_targets = 0
    if targets is not None:
        if len(targets) != len(sources):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        target_ids = tokenizer(text_target=list(targets), truncation=False, verbose=False)["input_ids"]
        labels, truncated_targets = _truncate(target_ids, max_target_length, special_ids)
    return Encoded(input_ids, labels, truncated_sources, truncated_targets)


def length_buckets(
    lengths: list[int], *, max_tokens: int | None, batch_size: int | None, shuffle: bool, seed: int
) -> list[list[int]]:
    """Group indices into batches of similar length; returns a list of batches of indices.

    Indices are sorted by length (stable, so equal lengths keep their order) and cut into consecutive batches
    of at most ``batch_size`` items and at most ``max_tokens`` padded tokens (items × longest item); a single
    item longer than ``max_tokens`` forms its own batch. With ``shuffle``, the order of the batches (never
    their content) is shuffled with ``random.Random(seed)``, as fairseq does; pass ``seed + epoch`` for a new
    order each epoch.
    """
    if max_tokens is None and batch_size is None:
        raise ValueError("give max_tokens, batch_size or both")
    if (max_tokens is not None and max_tokens < 1) or (batch_size is not None and batch_size < 1):
        raise ValueError(f"max_tokens and batch_size must be >= 1, got {max_tokens} and {batch_size}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        # Ascending order: the new item is the longest of the batch, so it sets the padded width.
        full = (batch_size is not None and len(batch) >= batch_size) or (
            max_tokens is not None and (len(batch) + 1) * lengths[i] > max_tokens
        )
        if batch and full:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    if shuffle:
        random.Random(seed).shuffle(batches)
    return batches


def _pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for row, ids in enumerate(sequences):
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def collate(input_ids: list[list[int]], labels: list[list[int]] | None, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest member: ``input_ids``, ``attention_mask`` and, when given, ``labels``
    (padded with -100, which the loss ignores)."""
    if not input_ids:
        raise ValueError("cannot collate an empty batch")
    batch = {"input_ids": _pad(input_ids, pad_token_id)}
    batch["attention_mask"] = _pad([[1] * len(ids) for ids in input_ids], 0)
    if labels is not None:
        batch["labels"] = _pad(labels, IGNORE_INDEX)
    return batch


def collate_pairs(
    input_ids: list[list[int]], pos_labels: list[list[int]], neg_labels: list[list[int]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Collate ConSeq triples (x, y+, y−): ``labels`` holds y+ and ``neg_labels`` y−, each padded with -100 to
    its own max length, so one encoder pass over ``input_ids`` serves both decoder passes."""
    if not (len(input_ids) == len(pos_labels) == len(neg_labels)):
        raise ValueError(f"batch sizes differ: {len(input_ids)}, {len(pos_labels)}, {len(neg_labels)}")
    batch = collate(input_ids, pos_labels, pad_token_id)
    batch["neg_labels"] = _pad(neg_labels, IGNORE_INDEX)
    return batch


def collate_shared_sources(
    input_ids: list[list[int]], labels: list[list[int]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Collate (source, target) pairs whose sources repeat (a QA passage with several question-answer pairs):
    ``input_ids`` holds each distinct source of the batch once, ``source_index`` maps every target row of
    ``labels`` to its source row, so the encoder runs once per distinct source (see training.SharedSourceSeq2Seq).
    """
    if len(input_ids) != len(labels):
        raise ValueError(f"batch sizes differ: {len(input_ids)} sources, {len(labels)} targets")
    rows: dict[tuple[int, ...], int] = {}
    source_index = [rows.setdefault(tuple(ids), len(rows)) for ids in input_ids]
    batch = collate([list(ids) for ids in rows], labels, pad_token_id)
    batch["source_index"] = torch.tensor(source_index, dtype=torch.long)
    return batch
