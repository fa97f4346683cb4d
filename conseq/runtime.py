"""The one place that builds the Accelerator, seeds, sets up logging and the experiment tracker, and prints a
stage's result line. Nothing else in conseq knows how many processes there are beyond the accelerate calls a
stage makes in known places."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

log = logging.getLogger("conseq")

TRACKERS = ("none", "wandb", "tensorboard")


@dataclass
class Runtime:
    accelerator: Accelerator
    run_dir: Path
    tracking: bool

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.tracking:
            self.accelerator.log(metrics, step=step)

    def close(self) -> None:
        if self.tracking:
            self.accelerator.end_training()


def setup_logging(rank: int = 0, world: int = 1) -> None:
    """Logs go to stderr (stdout is reserved for each stage's JSON result line)."""
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # Library chatter (weight-loading bars, HTTP retries) drowns the stage's own log.
    for noisy in ("transformers", "datasets", "urllib3", "httpx", "filelock", "accelerate", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def start(
    *,
    run_dir: Path,
    seed: int,
    logger: str = "none",
    mixed_precision: str = "no",
    grad_accum: int = 1,
    run_name: str = "conseq",
    config: dict[str, Any] | None = None,
) -> Runtime:
    if logger not in TRACKERS:
        raise ValueError(f"logger={logger!r}: choose one of {', '.join(TRACKERS)}")
    # `accelerate launch --multi_gpu` on a machine without GPUs starts N processes but leaves accelerate's CPU
    # flag unset, so each would run alone; ask for the gloo process group explicitly then.
    cpu_group = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=cpu_group,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum,
        log_with=None if logger == "none" else logger,
        project_dir=str(run_dir),
    )
    setup_logging(accelerator.process_index, accelerator.num_processes)
    # device_specific seeds differ per rank, so sampling shards don't repeat each other; the shard seeds that
    # must be rank-independent (generation) are set explicitly by the stage.
    set_seed(seed)
    tracking = logger != "none"
    if tracking:
        # wandb without a login: run offline unless the user set WANDB_MODE themselves.
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(run_dir))
        accelerator.init_trackers(run_name, config=_flatten(config or {}))
    return Runtime(accelerator=accelerator, run_dir=run_dir, tracking=tracking)


def map_shards(accelerator: Accelerator | None, fn, items: list) -> list:
    """``fn`` (a list -> a list of as many results) over this process's contiguous share of ``items``; every
    process gets all the results, in input order. One process (or no accelerator): ``fn(items)``."""
    if accelerator is None or accelerator.num_processes == 1:
        return fn(list(items))
    with accelerator.split_between_processes(list(items)) as mine:
        mine_out = fn(list(mine)) if mine else []
    return gather_object(mine_out)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Trackers want flat scalar dicts (tensorboard's hparams reject nested values)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, int | float | str | bool):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def emit_result(stage: str, artifact: str | Path, cache_hit: bool, metrics: dict[str, Any]) -> dict[str, Any]:
    """The contract: a stage's last stdout line is one JSON object. Stages call this on the main process only
    (or before any process group exists, on a cache hit, where every process prints the same line)."""
    line = {"stage": stage, "artifact": str(artifact), "cache_hit": cache_hit, "metrics": metrics}
    print(json.dumps(line, default=_json_default), flush=True)
    return line


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
