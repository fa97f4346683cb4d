"""The entry point of every stage: ``python -m conseq.train stage=<name> [overrides…]``.

Hydra composes ``configs/`` (typed by conseq/config.py), the composed tree is converted once into
dataclasses, and the stage named by ``stage=`` runs. The same command runs under
``accelerate launch [--config_file configs/accelerate/…] -m conseq.train …``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from conseq.config import Config, register
from conseq.errors import user_errors

# stage name → module with a run(cfg) function; imported on use so `stage=partition` never loads torch models.
STAGES = {
    "pretrain": "conseq.stages.pretrain",
    "qagen": "conseq.stages.qagen",
    "mle": "conseq.stages.mle",
    "generate": "conseq.stages.generate",
    "score": "conseq.stages.score",
    "partition": "conseq.stages.partition",
    "contrastive": "conseq.stages.contrastive",
    "evaluate": "conseq.stages.evaluate",
    "pipeline": "conseq.stages.pipeline",
    # the inspection page of the pipeline's products (conseq/report)
    "report": "conseq.stages.report",
    # QAGS's QA model and the FactCC-style classifier (QAGS's question generator: stage=qagen stages.qagen.mode=qg)
    "qa": "conseq.stages.qa",
    "factcc": "conseq.stages.factcc",
    # how far each scorer agrees with labels (the news world's oracle, or a human-labelled benchmark)
    "metaeval": "conseq.stages.metaeval",
}

register()


def to_config(raw: DictConfig) -> Config:
    """Resolve interpolations and convert to dataclasses; paths become absolute once, here."""
    cfg: Config = OmegaConf.to_object(raw)
    if cfg.stage not in STAGES:
        raise SystemExit(f"stage={cfg.stage!r} is not a stage; choose one of: {', '.join(STAGES)}")
    cfg.paths.root = str(Path(cfg.paths.root).expanduser().resolve())
    return cfg


# user_errors inside hydra.main: a bad input file, knob or full disk is one line on stderr and exit status 2
# (conseq/errors.py), never Hydra's "Error executing job" and a traceback.
@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
@user_errors
def main(raw: DictConfig) -> None:
    cfg = to_config(raw)
    importlib.import_module(STAGES[cfg.stage]).run(cfg)


if __name__ == "__main__":
    sys.exit(main())
