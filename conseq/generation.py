"""Decoding helpers that transformers no longer ships: the batched diverse (group) beam search QAGen uses.

transformers 5 moved group beam search to hub code that cannot be fetched offline, so conseq owns the variant
QUALS needs: G groups of beam width 1 decoded in lock-step with a KV cache, with fairseq's Hamming diversity
penalty applied group by group within each step (Vijayakumar et al., 2018; fairseq 0.9 ``DiverseBeamSearch``
as the original QUALS code ran it with ``--beam 60 --diverse_beam_groups 60 --diverse_beam_strength 0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass

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
      top ``num_groups + 2`` tokens, which always hold the penalized maximum); immaterial with float scores.

    The encoder runs once per input row; the shared first decoder step (decoder start + forced BOS) runs
    on the B input rows and its cache is then repeated for the B x G decoder rows, which all advance in one
    batched forward per step with the KV cache. Finished rows leave the batch (and the cache) as they end.
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
    logprobs = out.logits[:, -1].float().log_softmax(-1).repeat_interleave(groups, dim=0)
    encoder_hidden = encoder_hidden.repeat_interleave(groups, dim=0)
    attention_mask = attention_mask.repeat_interleave(groups, dim=0)
    vocab = logprobs.shape[-1]
    # The penalized argmax of group g is among the g + 1 best unmasked tokens (at most g tokens carry a
    # penalty, and a penalty only lowers a score); pad and EOS may be masked, hence + 2.
    k = min(vocab, groups + 2)

    rows = batch * groups
    active = torch.arange(rows, device=device)  # flat row ids (b * G + g) still decoding, in batch order
    tokens = torch.full((rows, max_new_tokens + 1), pad_id, dtype=torch.long, device=device)
    token_logprobs = torch.zeros(rows, max_new_tokens + 1, device=device)
    penalized = torch.zeros(rows, device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)

    # fairseq 0.9 runs `for step in range(max_len + 1)` ("one extra step for EOS marker") and at
    # step >= max_len masks every token but EOS, so a hypothesis holds at most max_len tokens plus the
    # forced EOS. Same here.
    last_tokens = None  # the tokens chosen at the previous step, one per row still decoding
    for step in range(max_new_tokens + 1):
        if step > 0:
            out = model(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
                attention_mask=attention_mask,
                decoder_input_ids=last_tokens[:, None],
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            logprobs = out.logits[:, -1].float().log_softmax(-1)

        masked = logprobs.clone()
        masked[:, pad_id] = -torch.inf
        if step < min_new_tokens:
            masked[:, eos_id] = -torch.inf
        if step >= max_new_tokens:
            masked.fill_(-torch.inf)
            masked[:, eos_id] = logprobs[:, eos_id]
        cand_scores, cand_ids = masked.topk(k, dim=-1)

        # Dense [B, G, k] views; finished groups hold -inf candidates and choose nothing (-1).
        dense_scores = torch.full((rows, k), -torch.inf, device=device)
        dense_ids = torch.full((rows, k), -1, dtype=torch.long, device=device)
        dense_scores[active] = cand_scores
        dense_ids[active] = cand_ids
        dense_scores, dense_ids = dense_scores.view(batch, groups, k), dense_ids.view(batch, groups, k)
        is_active = torch.zeros(rows, dtype=torch.bool, device=device)
        is_active[active] = True
        is_active = is_active.view(batch, groups)

        chosen = torch.full((batch, groups), -1, dtype=torch.long, device=device)
        chosen_score = torch.zeros(batch, groups, device=device)
        for g in range(groups):  # the penalty of group g depends on the choices of groups < g
            scores, ids = dense_scores[:, g], dense_ids[:, g]
            if g > 0 and diversity_penalty:
                counts = (ids.unsqueeze(-1) == chosen[:, None, :g]).sum(-1)
                scores = scores - diversity_penalty * counts
            best = scores.argmax(-1, keepdim=True)
            chosen[:, g] = torch.where(is_active[:, g], ids.gather(1, best).squeeze(1), -1)
            chosen_score[:, g] = scores.gather(1, best).squeeze(1)

        step_tokens = chosen.view(-1)[active]
        tokens[active, step] = step_tokens
        token_logprobs[active, step] = logprobs.gather(1, step_tokens[:, None]).squeeze(1)
        penalized[active] += chosen_score.view(-1)[active]
        lengths[active] += 1

        keep = step_tokens != eos_id
        if not keep.any():
            break
        last_tokens = step_tokens[keep]
        if not keep.all():
            keep_idx = keep.nonzero().squeeze(1)
            active = active[keep_idx]
            cache.batch_select_indices(keep_idx)
            encoder_hidden = encoder_hidden[keep_idx]
            attention_mask = attention_mask[keep_idx]

    width = int(lengths.max())
    tokens, token_logprobs = tokens[:, :width], token_logprobs[:, :width]
    if forced_bos is not None:
        tokens = torch.cat([torch.full((rows, 1), int(forced_bos), device=device), tokens], dim=1)
        token_logprobs = torch.cat([torch.zeros(rows, 1, device=device), token_logprobs], dim=1)
    return DiverseBeamOutput(
        sequences=tokens.view(batch, groups, -1),
        token_logprobs=token_logprobs.view(batch, groups, -1),
        penalized_scores=penalized.view(batch, groups),
        lengths=lengths.view(batch, groups),
    )
