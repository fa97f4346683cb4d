"""Teacher-forced log-likelihoods of QA sequences given a source, with each source encoded once.

The original scored every QA pair with the source repeated in its batch row (no encoder reuse). Here the
sources are encoded in length-sorted batches and each source's hidden states (batch 1, trimmed to its own
length) are broadcast over all of its target rows: BART's cross-attention accepts an encoder output of batch 1
for a decoder batch of M, so the cross-attention keys and values are computed once per source, not once per
row. Measured on CPU (1 thread, random bart-base-sized model, 4 sources of 400 tokens with 10 pairs each):
4.6 s, the same as encoding each source alone (4.3-4.6 s); index-selecting a batched encoder output per row
(cross-attention keys/values recomputed per row) took 7.0 s, the naive way (source in every row) 26 s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutput


def _pad(seqs: list[list[int]], value: int, device) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out.to(device)


@torch.inference_mode()
def pair_log_likelihoods(
    model,
    source_ids: list[list[int]],
    targets: list[list[list[int]]],
    *,
    pad_token_id: int,
    max_rows: int = 256,
    per_token: bool = False,
) -> list[list[float]] | list[list[tuple[float, list[float]]]]:
    """Per-token mean log p(target | source) for every target of every source, by teacher forcing.

    ``targets[i]`` are the decoder target sequences for ``source_ids[i]`` (as generated: forced BOS if any,
    question, separator, answer, EOS). The decoder input is the target shifted right behind the model's
    ``decoder_start_token_id``. The mean runs over every target token except a leading forced BOS (when the
    model forces one and the target starts with it), i.e. over question, separator, answer and EOS.

    Sources are encoded in length-sorted batches of at most ``max_rows`` target rows (at least one source);
    each decoder forward holds at most ``max_rows`` rows of one source, length-sorted. Call on a model in eval
    mode. Returns one list of floats per source, in target order; with ``per_token=True`` each float is a
    ``(mean, [log p of each token the mean runs over])`` pair instead (the same mean, for the QUALS report).
    """
    if len(source_ids) != len(targets):
        raise ValueError(f"{len(source_ids)} sources but {len(targets)} target lists")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    gen = model.generation_config
    start_id = (
        gen.decoder_start_token_id if gen.decoder_start_token_id is not None else model.config.decoder_start_token_id
    )
    forced_bos = gen.forced_bos_token_id
    device = model.device
    results: list[list[float]] = [[float("nan")] * len(t) for t in targets]

    # Longest sources first; group consecutive sources into encoder batches of <= max_rows target rows.
    order = sorted((i for i in range(len(source_ids)) if targets[i]), key=lambda i: -len(source_ids[i]))
    chunks, current, rows = [], [], 0
    for i in order:
        if current and rows + len(targets[i]) > max_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(i)
        rows += len(targets[i])
    if current:
        chunks.append(current)

    encoder = model.get_encoder()
    for chunk in chunks:
        input_ids = _pad([source_ids[i] for i in chunk], pad_token_id, device)
        attention_mask = (
            torch.arange(input_ids.shape[1], device=device)[None, :]
            < torch.tensor([len(source_ids[i]) for i in chunk], device=device)[:, None]
        ).long()
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for row, i in enumerate(chunk):
            encoder_outputs = BaseModelOutput(last_hidden_state=hidden[row : row + 1, : len(source_ids[i])])
            by_length = sorted(range(len(targets[i])), key=lambda j: -len(targets[i][j]))
            for start in range(0, len(by_length), max_rows):
                picked = by_length[start : start + max_rows]
                seqs = [targets[i][j] for j in picked]
                labels = _pad(seqs, -100, device)
                decoder_input_ids = _pad([[start_id, *s[:-1]] for s in seqs], pad_token_id, device)
                if forced_bos is not None:
                    labels[:, 0] = torch.where(labels[:, 0] == forced_bos, -100, labels[:, 0])
                logits = model(encoder_outputs=encoder_outputs, decoder_input_ids=decoder_input_ids).logits
                token_ll = -F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
                scored = labels != -100
                means = (token_ll.sum(1) / scored.sum(1).clamp(min=1)).tolist()
                if per_token:
                    rows = [values[mask].tolist() for values, mask in zip(token_ll, scored, strict=True)]
                    means = list(zip(means, rows, strict=True))
                for j, value in zip(picked, means, strict=True):
                    results[i][j] = value
    return results
