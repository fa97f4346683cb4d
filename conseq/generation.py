"""Decoding helpers that transformers no longer ships: the batched diverse (group) beam search QAGen uses.

transformers 5 moved group beam search to hub code that cannot be fetched offline, so conseq owns the variant
QUALS needs: G groups of beam width 1 decoded in lock-step with a KV cache, with fairseq's Hamming diversity
penalty applied group by group within each step (Vijayakumar et al., 2018; fairseq 0.9 ``DiverseBeamSearch``
as the original QUALS code ran it with ``--beam 60 --diverse_beam_groups 60 --diverse_beam_strength 0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput


@dataclass
class DiverseBeamOutput:
    """One hypothesis per group for each input row.

    sequences:        [B, G, T] generated ids (a forced BOS first if the model forces one, then the scored
                      tokens up to and including EOS), right-padded with the pad id.
    token_logprobs:   [B, G, T] the model's log-probability of each generated token, without the diversity
                      penalty; 0 at a forced BOS and at padding.
    penalized_scores: [B, G] the summed search score including the Hamming penalties (fairseq 0.9's
                      ``unnorm_scores``). Equals ``token_logprobs.sum(-1)`` for group 0.
    lengths:          [B, G] number of scored tokens (generated tokens including EOS, excluding a forced BOS),
                      so ``penalized_scores / lengths`` is fairseq's ``norm_scores`` at lenpen 1.
    """

    sequences: torch.Tensor
    token_logprobs: torch.Tensor
    penalized_scores: torch.Tensor
    lengths: torch.Tensor


def _single_id(token_id: int | list[int] | None, what: str) -> int:
    if isinstance(token_id, (list, tuple)):
        token_id = token_id[0] if token_id else None
    if token_id is None:
        raise ValueError(f"the model's generation_config has no {what}; set it before decoding")
    return int(token_id)


@torch.inference_mode()
def diverse_beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    num_groups: int = 60,
    diversity_penalty: float = 0.5,
    min_new_tokens: int = 8,
    max_new_tokens: int = 60,
) -> DiverseBeamOutput:
    """Diverse beam search with ``num_groups`` groups of width 1 for a batch of encoder inputs.

    Semantics (fairseq 0.9 ``DiverseBeamSearch`` with beam size = number of groups): the groups decode in
    lock-step; at each step group g takes the argmax over the vocabulary of
    ``log_softmax(logits) - diversity_penalty * (number of groups < g that chose that token at this step)``,
    so group 0 is plain greedy decoding. EOS is forbidden until ``min_new_tokens`` tokens were generated;
    a group that emits EOS is finished (padded afterwards, and no longer counted by later groups'
    penalties); after ``max_new_tokens`` tokens only EOS is allowed. Both limits count scored tokens other
    than EOS, like fairseq's ``min_len`` / ``max_len``. A forced BOS
    (``generation_config.forced_bos_token_id``, BART's ``<s>``) is emitted first by every group, neither
    scored nor counted. The pad token is never chosen (fairseq masks it too).

    Where this differs from fairseq 0.9:
    - fairseq keeps 2 x beam candidates per step and its Hamming counts include both top-2 candidates of
      each earlier group, not only the token the group continued with; here only the chosen token counts.
    - fairseq finalizes a hypothesis whenever a group's best candidate is EOS and lets that group go on
      with its runner-up, so one group can yield several hypotheses, and it returns the first ``beam``
      finalized ones (late groups may yield none). Here every group yields exactly one: G per input.
    - Ties in the argmax may break differently from a full-vocabulary argmax (the search ranks only the
      best few tokens, and the best ``num_groups`` where a choice needs them); immaterial with float scores.

    The encoder runs once per input row; the shared first decoder step (decoder start + forced BOS) runs
    on the B input rows and its cache is then repeated for the B x G decoder rows, which all advance in one
    batched forward per step with the KV cache. Finished rows leave the batch (and the cache) once a quarter
    of the rows has finished. The per-group choice runs on each row's few best tokens (see ``_SHALLOW_TOP_K``)
    in numpy: a full-depth top-k and ~10 small tensor ops per group and step were over half of the search's
    time on CPU for the tiny QAGen.
    Call on a model in eval mode.
    """
    gen = model.generation_config
    start_id = _single_id(
        gen.decoder_start_token_id if gen.decoder_start_token_id is not None else model.config.decoder_start_token_id,
        "decoder_start_token_id",
    )
    eos_id = _single_id(gen.eos_token_id if gen.eos_token_id is not None else model.config.eos_token_id, "eos")
    pad_id = _single_id(gen.pad_token_id if gen.pad_token_id is not None else model.config.pad_token_id, "pad")
    forced_bos = gen.forced_bos_token_id
    if min_new_tokens > max_new_tokens:
        raise ValueError(f"min_new_tokens={min_new_tokens} exceeds max_new_tokens={max_new_tokens}")

    device = input_ids.device
    batch, groups = input_ids.shape[0], num_groups
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    encoder_hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # The decoder prefix is identical for every group: run it once per input row, then repeat the cache.
    prefix = [start_id] + ([int(forced_bos)] if forced_bos is not None else [])
    out = model(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
        attention_mask=attention_mask,
        decoder_input_ids=torch.tensor([prefix], device=device).expand(batch, -1),
        use_cache=True,
    )
    cache = out.cache
    cache.batch_repeat_interleave(groups)
    logits = out.logits[:, -1].float().repeat_interleave(groups, dim=0)
    encoder_hidden = encoder_hidden.repeat_interleave(groups, dim=0)
    attention_mask = attention_mask.repeat_interleave(groups, dim=0)

    rows = batch * groups
    cached = np.arange(rows)  # flat row ids (b * G + g) of the decoder rows in the cache, in batch order
    live = np.ones(rows, dtype=bool)  # which of them are still decoding
    tokens = np.full((rows, max_new_tokens + 1), pad_id, dtype=np.int64)
    token_logprobs = np.zeros((rows, max_new_tokens + 1), dtype=np.float32)
    penalized = np.zeros(rows, dtype=np.float64)
    lengths = np.zeros(rows, dtype=np.int64)
    step_tokens = np.full(rows, pad_id)  # the tokens chosen at the previous step, one per cached row

    # fairseq 0.9 runs `for step in range(max_len + 1)` ("one extra step for EOS marker") and at
    # step >= max_len masks every token but EOS, so a hypothesis holds at most max_len tokens plus the
    # forced EOS. Same here.
    for step in range(max_new_tokens + 1):
        if step > 0:
            out = model(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
                attention_mask=attention_mask,
                decoder_input_ids=torch.from_numpy(np.where(live, step_tokens, pad_id)).to(device)[:, None],
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            logits = out.logits[:, -1].float()
        chosen, logprob, score = _choose_step(
            logits, cached, live, batch, groups, diversity_penalty, pad_id, eos_id, step, min_new_tokens, max_new_tokens
        )
        step_tokens = chosen.reshape(-1)[cached]
        decoding = cached[live]
        tokens[decoding, step] = step_tokens[live]
        token_logprobs[decoding, step] = logprob.reshape(-1)[decoding]
        penalized[decoding] += score.reshape(-1)[decoding]
        lengths[decoding] += 1

        live &= step_tokens != eos_id
        if not live.any():
            break
        # Finished rows leave the cache in bulk: selecting cache rows copies every layer's keys and values
        # (cross-attention's too, repeated per group), which costs more than a few idle rows' decoding.
        if (~live).sum() >= _PRUNE_FRACTION * len(live):
            keep_idx = torch.from_numpy(live.nonzero()[0]).to(device)
            cache.batch_select_indices(keep_idx)
            encoder_hidden = encoder_hidden[keep_idx]
            attention_mask = attention_mask[keep_idx]
            cached, step_tokens, live = cached[live], step_tokens[live], live[live]

    width = int(lengths.max())
    tokens, token_logprobs = tokens[:, :width], token_logprobs[:, :width]
    if forced_bos is not None:
        tokens = np.concatenate([np.full((rows, 1), int(forced_bos)), tokens], axis=1)
        token_logprobs = np.concatenate([np.zeros((rows, 1), dtype=np.float32), token_logprobs], axis=1)
    return DiverseBeamOutput(
        sequences=torch.from_numpy(tokens).view(batch, groups, -1).to(device),
        token_logprobs=torch.from_numpy(token_logprobs).view(batch, groups, -1).to(device),
        penalized_scores=torch.from_numpy(penalized.astype(np.float32)).view(batch, groups).to(device),
        lengths=torch.from_numpy(lengths).view(batch, groups).to(device),
    )


# Candidates ranked per decoder row before the group-by-group choice: the penalized argmax of group g is
# among the g + 1 best tokens (at most g carry a penalty), but a deep top-k over the vocabulary is the
# search's most expensive operation on CPU, and groups rarely go past their few best tokens. So every row
# first ranks only this many; a batch row where some group's choice cannot be certified from them (its
# penalized score falls below its last candidate's score, so a token outside might beat it) is redone with
# the g + 1 bound. The result is the same as with the full bound.
_SHALLOW_TOP_K = 8
_PRUNE_FRACTION = 0.25


def _choose_step(logits, cached, live, batch, groups, penalty, pad_id, eos_id, step, min_new, max_new):
    """One step's choice for every group: ``[B, G]`` arrays of the chosen token (-1 for finished groups), its
    log-probability and its penalized score. ``logits`` holds the rows ``cached`` (flat ``b * G + g``), of
    which those marked ``live`` are still decoding."""
    active, keep = cached[live], torch.from_numpy(live).to(logits.device)
    log_z = logits.logsumexp(-1, keepdim=True)
    if step >= max_new:  # only EOS is allowed
        cand_scores, cand_ids = logits[:, eos_id : eos_id + 1] - log_z, torch.full_like(log_z, eos_id).long()
        return _choose(*_dense(cand_scores[keep], cand_ids[keep], active, batch, groups), penalty)
    logits[:, pad_id] = -torch.inf
    if step < min_new:
        logits[:, eos_id] = -torch.inf
    vocab = logits.shape[-1]
    shallow = min(vocab, _SHALLOW_TOP_K)
    cand_scores, cand_ids = logits.topk(shallow, dim=-1)
    scores, ids = _dense((cand_scores - log_z)[keep], cand_ids[keep], active, batch, groups)
    chosen, logprob, score = _choose(scores, ids, penalty)
    # A penalty only lowers a score: a choice at least as good as the last ranked candidate is certain.
    unsure = ~(score >= scores[:, :, -1]).all(1)
    deep = min(vocab, groups)  # masked tokens are -inf: ranked last
    if deep > shallow and unsure.any():
        redo = live & np.isin(cached // groups, unsure.nonzero()[0])
        redo_idx = torch.from_numpy(redo.nonzero()[0]).to(logits.device)
        cand_scores, cand_ids = logits[redo_idx].topk(deep, dim=-1)
        redo_rows = unsure.nonzero()[0]
        scores, ids = _dense(cand_scores - log_z[redo_idx], cand_ids, cached[redo], len(redo_rows), groups, redo_rows)
        chosen[redo_rows], logprob[redo_rows], score[redo_rows] = _choose(scores, ids, penalty)
    return chosen, logprob, score


def _dense(cand_scores, cand_ids, active, batch, groups, batch_rows=None):
    """``[B, G, k]`` numpy views of per-row candidates; finished groups hold -inf scores and id -1.
    ``batch_rows``: the batch rows these candidates belong to (default: all ``batch``, in order)."""
    k = cand_scores.shape[-1]
    rows = active
    if batch_rows is not None:  # renumber b * G + g to the position of b in batch_rows
        rows = np.searchsorted(batch_rows, active // groups) * groups + active % groups
    scores = np.full((batch * groups, k), -np.inf, dtype=np.float32)
    ids = np.full((batch * groups, k), -1, dtype=np.int64)
    scores[rows] = cand_scores.cpu().numpy()
    ids[rows] = cand_ids.cpu().numpy()
    return scores.reshape(batch, groups, k), ids.reshape(batch, groups, k)


def _choose(scores, ids, penalty):
    """Group by group (the penalty of group g depends on the choices of groups < g): the candidate that
    maximizes score - penalty x (number of earlier groups that chose it). Returns the chosen ids, their
    unpenalized scores and their penalized scores, each ``[B, G]``."""
    batch, groups, _ = scores.shape
    rows = np.arange(batch)
    chosen = np.full((batch, groups), -1, dtype=np.int64)
    logprob = np.zeros((batch, groups), dtype=np.float32)
    score = np.zeros((batch, groups), dtype=np.float32)
    for g in range(groups):
        adjusted = scores[:, g]
        if g > 0 and penalty:
            adjusted = adjusted - penalty * (ids[:, g, :, None] == chosen[:, None, :g]).sum(-1)
        best = adjusted.argmax(-1)
        chosen[:, g] = ids[rows, g, best]
        logprob[:, g] = scores[rows, g, best]
        score[:, g] = adjusted[rows, best]
    return chosen, logprob, score
