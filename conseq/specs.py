"""The artifact graph: what each stage's product is keyed on, in one screen.

Every function returns the (possibly not yet built) artifact of one stage for a config, so a stage finds its
upstream products without importing another stage, and ``require`` tells the user which command builds a
missing upstream model. A key hashes only what changes the content (DESIGN §4); knobs that only change how
fast or how often something is logged are listed in NOT_KEYED.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from conseq.artifacts import Artifact, artifact
from conseq.config import Config, ModelConfig
from conseq.data import prepare

# Knobs that never change an artifact's content. (stages.qagen.mode does, but as the artifact's kind: specs.qagen
# is the QUALS model, specs.qg the QAGS question generator, so existing QAGen keys did not change with the knob.)
NOT_KEYED = {"log_every", "save_every", "batch_size_eval", "max_rows", "variants", "mode", "qg_overrides"}


def _keyed(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(obj).items() if k not in NOT_KEYED}


def data(cfg: Config) -> Artifact:
    return artifact(cfg.paths.root, "data", prepare.summarization_spec(cfg.data))


def qa_data(cfg: Config) -> Artifact:
    return artifact(cfg.paths.root, "qa_data", prepare.qa_spec(cfg.qa_data, _world(cfg)))


def _world(cfg: Config) -> dict[str, Any] | None:
    return asdict(cfg.data.world) if cfg.qa_data.source == "newsworld" else None


def tokenizer(cfg: Config, model: ModelConfig) -> Artifact | None:
    """The from-scratch tokenizer (None for a pretrained or warm-started model, which brings its own)."""
    if model.name_or_path or model.warm_start:
        return None
    return artifact(cfg.paths.root, "tokenizer", prepare.tokenizer_spec(model, data(cfg).key))


WARM_STARTS = ("mle", "qagen")


def base_model(cfg: Config, model: ModelConfig) -> dict[str, Any]:
    if model.name_or_path:
        return {"name_or_path": model.name_or_path}
    if model.warm_start is not None:
        if model.warm_start not in WARM_STARTS:
            raise ValueError(f"warm_start={model.warm_start!r}: choose null or one of {', '.join(WARM_STARTS)}")
        if model.warm_start == "qagen":
            if model is cfg.qagen_model:
                raise ValueError("qagen_model.warm_start: the QAGen model cannot warm-start from itself")
            return {"warm_start_qagen": cfg.qagen or qagen(cfg).key}
        return {"warm_start": mle(cfg).key}  # this spelling keeps the keys of existing mle warm starts
    return {"scratch": model.scratch_dims(), "tokenizer": tokenizer(cfg, model).key}


def start_from(cfg: Config, model: ModelConfig) -> str | None:
    """The folder or hub id a training stage loads its first weights from; None = build from scratch."""
    if model.name_or_path:
        return model.name_or_path
    if model.warm_start == "mle":
        return str(require(mle(cfg), "stage=mle", "MLE summarizer (warm_start=mle)").path)
    if model.warm_start == "qagen":
        return cfg.qagen or str(require(qagen(cfg), "stage=qagen", "QAGen model (warm_start=qagen)").path)
    return None


def mle(cfg: Config) -> Artifact:
    if cfg.model.warm_start is not None:
        raise ValueError("model.warm_start: the summarizer itself cannot warm-start from the MLE model")
    spec = {
        "stage": "mle",
        "data": data(cfg).key,
        "model": base_model(cfg, cfg.model),
        "lengths": [cfg.model.max_source_length, cfg.model.max_target_length],
        "train": _keyed(cfg.stages.mle),
    }
    return artifact(cfg.paths.root, "mle", spec)


def qagen(cfg: Config) -> Artifact | None:
    """The QAGen model this config trains (None when ``qagen=`` names an existing checkpoint)."""
    if cfg.qagen:
        return None
    spec = {
        "stage": "qagen",
        "qa_data": qa_data(cfg).key,
        "model": base_model(cfg, cfg.qagen_model),
        "train": _keyed(cfg.stages.qagen.resolved("qagen")),
    }
    return artifact(cfg.paths.root, "qagen", spec)


def qagen_location(cfg: Config) -> tuple[str, str]:
    """(path or hub id, identity for keys) of the QAGen model used for scoring."""
    if cfg.qagen:
        return cfg.qagen, cfg.qagen
    art = qagen(cfg)
    require(art, "stage=qagen", "QAGen model")
    return str(art.path), art.key


def require(art: Artifact, command: str, what: str) -> Artifact:
    if not art.done:
        raise FileNotFoundError(
            f"the {what} this stage needs is not built yet ({art.path}). Build it with "
            f"`python -m conseq.train {command}` and the same overrides, or run `stage=pipeline`."
        )
    return art


def candidates(cfg: Config) -> Artifact:
    spec = {
        "stage": "generate",
        "mle": mle(cfg).key,
        "data": data(cfg).key,
        "max_source_length": cfg.model.max_source_length,
        "generate": asdict(cfg.stages.generate),
    }
    return artifact(cfg.paths.root, "candidates", spec)


def scores(cfg: Config) -> Artifact:
    qagen_key = cfg.qagen or qagen(cfg).key
    quals = {k: v for k, v in asdict(cfg.stages.score.quals).items() if k not in ("batch_size", "max_rows")}
    spec = {"stage": "score", "candidates": candidates(cfg).key, "qagen": qagen_key, "quals": quals}
    return artifact(cfg.paths.root, "scores", spec)


def partition(cfg: Config, scorer: str | None = None) -> Artifact:
    p = cfg.stages.partition
    scorer = scorer or p.scorer
    upstream = scores(cfg).key if scorer == "quals" else candidates(cfg).key
    knobs = {k: v for k, v in asdict(p).items() if k not in ("scorer", "examples")}
    spec = {"stage": "partition", "scorer": scorer, "upstream": upstream, "partition": knobs}
    if scorer in ("random", "oracle"):  # their random draws come from the run's seed (keyed only for them)
        spec["seed"] = cfg.seed
    return artifact(cfg.paths.root, "partition", spec)


def contrastive(cfg: Config, variant: str | None = None) -> Artifact:
    c = cfg.stages.contrastive.resolved(variant)
    spec = {
        "stage": "contrastive",
        "mle": mle(cfg).key,
        "partition": partition(cfg, c.partition_scorer).key,
        "lengths": [cfg.model.max_source_length, cfg.model.max_target_length],
        # The variant's name is a label only: two names with the same knobs are the same model.
        "train": {k: v for k, v in _keyed(c).items() if k != "variant"},
    }
    return artifact(cfg.paths.root, "contrastive", spec)


# ------------------------------------------------------------------------------------ QAGS and FactCC models


def qg(cfg: Config) -> Artifact | None:
    """QAGS's question generator ("answer<sep>passage" -> question), trained by the qagen stage in mode qg
    (None when ``qg=`` names an existing checkpoint)."""
    if cfg.qg:
        return None
    spec = {
        "stage": "qagen",
        "mode": "qg",
        "qa_data": qa_data(cfg).key,
        "model": base_model(cfg, cfg.qg_model),
        "lengths": [cfg.qg_model.max_source_length, cfg.qg_model.max_target_length],
        "train": _keyed(cfg.stages.qagen.resolved("qg")),
    }
    return artifact(cfg.paths.root, "qg", spec)


def qa(cfg: Config) -> Artifact | None:
    """QAGS's extractive QA model (None when ``qa=`` names an existing checkpoint)."""
    if cfg.qa:
        return None
    spec = {
        "stage": "qa",
        "qa_data": qa_data(cfg).key,
        "model": base_model(cfg, cfg.qa_model),
        "max_length": cfg.qa_model.max_source_length,
        "train": _keyed(cfg.stages.qa),
    }
    return artifact(cfg.paths.root, "qa", spec)


def factcc(cfg: Config) -> Artifact | None:
    """The FactCC-style classifier (None when ``factcc=`` names an existing checkpoint)."""
    if cfg.factcc:
        return None
    spec = {
        "stage": "factcc",
        "data": data(cfg).key,
        "model": base_model(cfg, cfg.factcc_model),
        "max_length": cfg.factcc_model.max_source_length,
        "train": _keyed(cfg.stages.factcc),
    }
    return artifact(cfg.paths.root, "factcc", spec)


def qg_location(cfg: Config) -> tuple[str, str]:
    """(path or hub id, identity for keys) of the question generator QAGS uses."""
    if cfg.qg:
        return cfg.qg, cfg.qg
    art = require(qg(cfg), "stage=qagen stages.qagen.mode=qg", "QAGS question generator")
    return str(art.path), art.key


def qa_location(cfg: Config) -> tuple[str, str]:
    if cfg.qa:
        return cfg.qa, cfg.qa
    art = require(qa(cfg), "stage=qa", "QAGS question-answering model")
    return str(art.path), art.key


def factcc_location(cfg: Config) -> tuple[str, str]:
    if cfg.factcc:
        return cfg.factcc, cfg.factcc
    art = require(factcc(cfg), "stage=factcc", "FactCC classifier")
    return str(art.path), art.key
