"""The one training loop on accelerate shared by the qagen, mle and contrastive stages.

The stages differ only in what a batch holds and how its loss is computed, so each passes its examples, a
collate function and a loss function; the loop is plain and visible here: AdamW, a warm-up schedule,
gradient accumulation, clipping, mixed precision from accelerate, periodic validation with a best-checkpoint
rule, and the full training state saved every ``save_every`` steps into the artifact's partial folder, from
which a killed run resumes.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from conseq.artifacts import read_json, write_json
from conseq.config import TrainConfig
from conseq.losses import label_smoothed_nll, sequence_log_probs
from conseq.runtime import Runtime, map_shards

log = logging.getLogger(__name__)

SCHEDULES = {"linear": "linear", "constant": "constant_with_warmup"}
LossFn = Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
EvalFn = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class FitResult:
    steps: int
    resumed_from: int | None
    best: dict[str, float] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def optimizer_steps(n_batches: int, cfg: TrainConfig, num_processes: int) -> int:
    per_epoch = math.ceil(n_batches / num_processes / cfg.grad_accum)
    total = max(1, math.ceil(per_epoch * cfg.epochs))
    return min(total, cfg.max_steps) if cfg.max_steps else total


def fit(
    *,
    runtime: Runtime,
    model: torch.nn.Module,
    examples: list[Any],
    batches: Callable[[int], list[list[int]]],
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    loss_fn: LossFn,
    eval_fn: EvalFn | None,
    cfg: TrainConfig,
    workdir: Path,
    train_module: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, FitResult]:
    """Train ``model`` and return the best (or last) weights, unwrapped, plus a summary of the run.

    ``batches(epoch)`` returns that epoch's list of example-index batches (length-bucketed, shuffled by epoch
    seed), so a resumed run sees exactly the batches the killed one would have. ``train_module`` (default:
    ``model``) is what the loss calls, e.g. an ``EncoderSharingPair`` around ``model``; ``model`` is what is
    validated and saved.
    """
    acc = runtime.accelerator
    # setup
    module = train_module or model
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=tuple(cfg.adam_betas),
        eps=cfg.adam_eps,
        # One multi-tensor kernel per step instead of a loop over ~100 parameters (torch's default on CPU): 15%
        # of a tiny BART's step on CPU, and what the GPU default already does.
        foreach=True,
    )
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"schedule={cfg.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    total_steps = optimizer_steps(len(batches(0)), cfg, acc.num_processes)
    scheduler = get_scheduler(
        SCHEDULES[cfg.schedule],
        optimizer,
        num_warmup_steps=min(cfg.warmup_steps, total_steps) * acc.num_processes,
        num_training_steps=total_steps * acc.num_processes,
    )
    prepared, optimizer, scheduler = acc.prepare(module, optimizer, scheduler)

    def inner() -> torch.nn.Module:
        unwrapped = acc.unwrap_model(prepared)
        return unwrapped.seq2seq if isinstance(unwrapped, EncoderSharingPair | SharedSourceSeq2Seq) else unwrapped

    state_dir, best_dir = workdir / "training_state", workdir / "best"
    # A state is written beside the last one and swapped in when complete, so a kill in the middle of a save
    # leaves the last complete state (never weights of one step with the counters of another).
    new_state, old_state = workdir / "training_state.new", workdir / "training_state.old"
    if acc.is_main_process and not (state_dir / "trainer.json").is_file() and (old_state / "trainer.json").is_file():
        shutil.rmtree(state_dir, ignore_errors=True)  # killed between the two renames of a swap
        os.replace(old_state, state_dir)
    acc.wait_for_everyone()
    result = FitResult(steps=0, resumed_from=None)
    epoch, batch_in_epoch = 0, 0
    best_value: float | None = None
    if (state_dir / "trainer.json").is_file():
        acc.load_state(str(state_dir))
        saved = read_json(state_dir / "trainer.json")
        result.steps, epoch, batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        best_value, result.best, result.history = saved["best_value"], saved["best"], saved["history"]
        result.resumed_from = result.steps
        log.info("resuming from step %d (epoch %d, batch %d) in %s", result.steps, epoch, batch_in_epoch, state_dir)

    def save_state() -> None:
        if acc.is_main_process:
            shutil.rmtree(new_state, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(new_state))
        if acc.is_main_process:
            write_json(
                new_state / "trainer.json",
                {
                    "step": result.steps,
                    "epoch": epoch,
                    "batch_in_epoch": batch_in_epoch,
                    "best_value": best_value,
                    "best": result.best,
                    "history": result.history,
                },
            )
            shutil.rmtree(old_state, ignore_errors=True)
            if state_dir.exists():
                os.replace(state_dir, old_state)
            os.replace(new_state, state_dir)
            shutil.rmtree(old_state, ignore_errors=True)
        acc.wait_for_everyone()

    def validate() -> None:
        nonlocal best_value
        if eval_fn is None:
            return
        prepared.eval()
        metrics = eval_fn(inner())
        prepared.train()
        metrics["step"] = result.steps
        result.history.append(metrics)
        runtime.log_metrics({f"val/{k}": v for k, v in metrics.items()}, step=result.steps)
        log.info("step %d validation: %s", result.steps, _fmt(metrics))
        value = metrics[cfg.select_metric]
        better = best_value is None or (value < best_value if cfg.select_mode == "min" else value > best_value)
        if better:
            best_value, result.best = value, metrics
            if acc.is_main_process:
                inner().save_pretrained(best_dir)
            acc.wait_for_everyone()

    # loop
    prepared.train()
    bar = tqdm(total=total_steps, initial=result.steps, desc="train", disable=not acc.is_main_process)
    running: dict[str, float] = {}
    while result.steps < total_steps:
        # The loader has its own generator: an iterator over a DataLoader otherwise draws its seed from the global
        # torch RNG, and a resumed run (the RNG restored as saved mid-epoch, then a new iterator for the rest of
        # that epoch) would draw once more than the run it resumes: other dropout masks from there on.
        loader = acc.prepare_data_loader(
            DataLoader(examples, batch_sampler=batches(epoch), collate_fn=collate, generator=torch.Generator()),
            device_placement=True,
        )
        if batch_in_epoch:
            loader = acc.skip_first_batches(loader, batch_in_epoch)
        for batch in loader:
            with acc.accumulate(prepared):
                loss, logs = loss_fn(prepared, batch)
                acc.backward(loss)
                if acc.sync_gradients and cfg.clip_norm:
                    acc.clip_grad_norm_(prepared.parameters(), cfg.clip_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            batch_in_epoch += 1
            for key, value in logs.items():
                running[key] = running.get(key, 0.0) + value
            running["n"] = running.get("n", 0.0) + 1
            if not acc.sync_gradients:
                continue
            result.steps += 1
            bar.update(1)
            if result.steps % cfg.log_every == 0 or result.steps == total_steps:
                n = running.pop("n")
                result.last_train = {k: v / n for k, v in running.items()} | {"lr": scheduler.get_last_lr()[0]}
                runtime.log_metrics({f"train/{k}": v for k, v in result.last_train.items()}, step=result.steps)
                bar.set_postfix({k: f"{v:.3g}" for k, v in result.last_train.items()})
                running = {}
            if cfg.eval_every and result.steps % cfg.eval_every == 0 and result.steps < total_steps:
                validate()
            if cfg.save_every and result.steps % cfg.save_every == 0 and result.steps < total_steps:
                save_state()
            if result.steps >= total_steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
    bar.close()

    # save
    validate()
    acc.wait_for_everyone()
    final = inner()
    if best_dir.is_dir() and result.best.get("step") != result.steps:
        log.info(
            "keeping the best checkpoint (step %s, %s=%.4g)",
            result.best["step"],
            cfg.select_metric,
            best_value,
        )
        final = type(final).from_pretrained(best_dir).to(acc.device)
    if acc.is_main_process:
        for folder in (state_dir, new_state, old_state, best_dir):
            shutil.rmtree(folder, ignore_errors=True)
    return final, result


def seq2seq_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], labels_key: str = "labels"):
    """Teacher-forced decoder logits for ``batch[labels_key]`` (decoder inputs = labels shifted right)."""
    labels = batch[labels_key]
    decoder_input_ids = _unwrap(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        decoder_input_ids=decoder_input_ids,
    )
    return out.logits


def smoothed_nll_loss(epsilon: float, forward: Callable = seq2seq_forward) -> LossFn:
    """The MLE / QAGen loss: label-smoothed NLL averaged over the batch's target tokens. ``forward(module,
    batch)`` gives the logits; pass ``shared_source_forward`` for a SharedSourceSeq2Seq module."""

    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        loss_sum, nll_sum, n_tokens = label_smoothed_nll(forward(model, batch), batch["labels"], epsilon)
        n = n_tokens.clamp(min=1)
        return loss_sum / n, {"loss": (loss_sum / n).item(), "nll": (nll_sum / n).item()}

    return loss_fn


def validation_nll(
    model: torch.nn.Module,
    runtime: Runtime,
    examples: list[Any],
    collate,
    batch_size: int = 32,
    forward: Callable = seq2seq_forward,
) -> float:
    """Token-mean NLL (no smoothing) of the references, computed on every process's share and reduced.
    ``forward(model, batch)`` gives the logits (``shared_source_forward`` for a SharedSourceSeq2Seq ``model``)."""
    acc = runtime.accelerator
    totals = torch.zeros(2, device=acc.device, dtype=torch.float64)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    with acc.split_between_processes(order) as mine, torch.inference_mode():
        for start in range(0, len(mine), batch_size):
            batch = {
                k: v.to(acc.device) for k, v in collate([examples[i] for i in mine[start : start + batch_size]]).items()
            }
            _, nll_sum, n_tokens = label_smoothed_nll(forward(model, batch), batch["labels"], 0.0)
            totals += torch.stack([nll_sum.double(), n_tokens.double()])
    totals = acc.reduce(totals, reduction="sum")
    return (totals[0] / totals[1].clamp(min=1)).item()


def pair_log_probs(
    model: torch.nn.Module, runtime: Runtime, examples: list[Any], collate, batch_size: int = 32
) -> list[tuple[float, float]]:
    """(Σ log p(y+), Σ log p(y−)) of every (x, y+, y−) example under ``model``, each process scoring a share,
    in example order on every process (DPO's reference log-probabilities)."""
    pair = EncoderSharingPair(model)

    def score(share: list[int]) -> list[tuple[float, float]]:
        out: dict[int, tuple[float, float]] = {}
        order = sorted(share, key=lambda i: len(examples[i][0]))  # length-sorted batches pad little
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = {k: v.to(runtime.accelerator.device) for k, v in collate([examples[i] for i in idx]).items()}
                pos_logits, neg_logits = pair(**batch)
                pos = sequence_log_probs(pos_logits, batch["labels"]).tolist()
                neg = sequence_log_probs(neg_logits, batch["neg_labels"]).tolist()
                out.update(zip(idx, zip(pos, neg, strict=True), strict=True))
        return [out[i] for i in share]

    return map_shards(runtime.accelerator, score, list(range(len(examples))))


class EncoderSharingPair(torch.nn.Module):
    """(x, y+, y−) in one forward: the encoder runs once per document and both decoder passes attend to its
    output. One module call per step keeps DDP's gradient hooks correct (two calls through a DDP wrapper before
    one backward are not supported)."""

    def __init__(self, seq2seq: torch.nn.Module):
        super().__init__()
        self.seq2seq = seq2seq

    def forward(self, input_ids, attention_mask, labels, neg_labels):
        encoder_outputs = self.seq2seq.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        logits = []
        for target in (labels, neg_labels):
            decoder_input_ids = self.seq2seq.prepare_decoder_input_ids_from_labels(labels=target)
            out = self.seq2seq(
                encoder_outputs=encoder_outputs,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
            )
            logits.append(out.logits)
        return logits[0], logits[1]


class SharedSourceSeq2Seq(torch.nn.Module):
    """Several targets per source in one forward: the encoder runs on each distinct source of the batch once and
    its output is gathered per target row (``source_index``, from batching.collate_shared_sources). Gradients
    through the gather add up over a source's targets, so this trains as one source copy per target would (with
    encoder dropout on, a source's copies share one dropout mask). A QA passage carries ~8 question-answer
    pairs, so QAGen training encodes ~8x fewer passage tokens (1.8x faster steps on the tiny BART)."""

    def __init__(self, seq2seq: torch.nn.Module):
        super().__init__()
        self.seq2seq = seq2seq

    def forward(self, input_ids, attention_mask, labels, source_index):
        hidden = self.seq2seq.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        out = self.seq2seq(
            encoder_outputs=(hidden.index_select(0, source_index),),
            attention_mask=attention_mask.index_select(0, source_index),
            decoder_input_ids=self.seq2seq.prepare_decoder_input_ids_from_labels(labels=labels),
        )
        return out.logits


def shared_source_forward(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a SharedSourceSeq2Seq module for a batching.collate_shared_sources batch."""
    return module(**batch)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # DDP wraps the model; the decoder-input helper lives on the inner transformers model.
    return getattr(model, "module", model)


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
