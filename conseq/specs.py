"""The artifact graph: what each stage's product is keyed on, in one screen.

Every function returns the (possibly not yet built) artifact of one stage for a config, so a stage finds its
upstream products without importing another stage, and ``require`` tells the user which command builds a
missing upstream model. A key hashes only what changes the content (DESIGN §4); knobs that only change how
fast or how often something is logged are listed in NOT_KEYED.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from conseq.artifacts import Artifact, artifact, model_identity
from conseq.config import Config, ContrastiveStageConfig, ModelConfig
from conseq.data import prepare

# Knobs that never change an artifact's content. (stages.qagen.mode does, but as the artifact's kind: specs.qagen
# is the QUALS model, specs.qg the QAGS question generator, so existing QAGen keys did not change with the knob.)
NOT_KEYED = {"log_every", "save_every", "batch_size_eval", "max_rows", "variants", "mode", "qg_overrides"}


def _keyed(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(obj).items() if k not in NOT_KEYED}


def _qagen_keyed(train) -> dict[str, Any]:
    # unanswerable_rate joined the recipe later: left out at 0, so models trained without it keep their keys.
    keyed = _keyed(train)
    if not keyed["unanswerable_rate"]:
        del keyed["unanswerable_rate"]
    return keyed


def data(cfg: Config) -> Artifact:
    return artifact(cfg.paths.root, "data", prepare.summarization_spec(cfg.data))


def qa_data(cfg: Config) -> Artifact:
    return artifact(cfg.paths.root, "qa_data", prepare.qa_spec(cfg.qa_data, _world(cfg)))


def _world(cfg: Config) -> dict[str, Any] | None:
    return asdict(cfg.data.world) if cfg.qa_data.source == "newsworld" else None


def tokenizer(cfg: Config, model: ModelConfig) -> Artifact | None:
    """The from-scratch tokenizer (None for a pretrained or warm-started model, which brings its own)."""
    if model.name_or_path or warm_start(model):
        return None
    return artifact(cfg.paths.root, "tokenizer", prepare.tokenizer_spec(model, data(cfg).key))


WARM_STARTS = ("pretrain", "mle", "qagen")


def warm_start(model: ModelConfig) -> str | None:
    """The warm start ``model`` uses: pretrain, mle or qagen; None for random weights (warm_start null or none)
    and for a model named by name_or_path, which wins."""
    if model.name_or_path or model.warm_start in (None, "none"):
        return None
    if model.warm_start not in WARM_STARTS:
        raise ValueError(f"warm_start={model.warm_start!r}: choose null (or none) or one of {', '.join(WARM_STARTS)}")
    return model.warm_start


def base_model(cfg: Config, model: ModelConfig) -> dict[str, Any]:
    if model.name_or_path:  # a hub id as itself, a local folder by its content
        return {"name_or_path": model_identity(model.name_or_path)}
    if warm_start(model) is not None:
        if model.warm_start == "pretrain":
            return {"warm_start_pretrain": pretrain(cfg).key}
        if model.warm_start == "qagen":
            if model is cfg.qagen_model:
                raise ValueError("qagen_model.warm_start: the QAGen model cannot warm-start from itself")
            return {"warm_start_qagen": qagen_location(cfg)[1] if cfg.qagen else qagen(cfg).key}
        return {"warm_start": mle(cfg).key}  # this spelling keeps the keys of existing mle warm starts
    return {"scratch": model.scratch_dims(), "tokenizer": tokenizer(cfg, model).key}


def start_from(cfg: Config, model: ModelConfig) -> str | None:
    """The folder or hub id a training stage loads its first weights from; None = build from scratch."""
    if model.name_or_path:
        return model.name_or_path
    if warm_start(model) == "pretrain":
        return str(require(pretrain(cfg), "stage=pretrain", "pretrained model (warm_start=pretrain)").path)
    if model.warm_start == "mle":
        return str(require(mle(cfg), "stage=mle", "MLE summarizer (warm_start=mle)").path)
    if model.warm_start == "qagen":
        return cfg.qagen or str(require(qagen(cfg), "stage=qagen", "QAGen model (warm_start=qagen)").path)
    return None


def pretrain(cfg: Config) -> Artifact:
    """BART's denoising pretraining of the from-scratch model (stage=pretrain): keyed on its corpus (the news
    world's document stream, never its references; or the data artifact), ``model``'s shape and vocabulary size
    (the stage trains the tokenizer too) and the recipe."""
    if cfg.data.source == "newsworld":
        # unlabelled_documents draws from the world's seed (and knowledge base) and skips the train/validation/
        # test documents: the knobs that only shape references or the QA split leave the corpus as it is.
        corpus = {"newsworld": {k: v for k, v in asdict(cfg.data.world).items() if k not in _REFERENCE_ONLY}}
    else:
        corpus = {"data": data(cfg).key}
    m = cfg.model
    spec = {
        "stage": "pretrain",
        "corpus": corpus,
        "model": {"scratch": m.scratch_dims(), "vocab_size": m.vocab_size, "max_length": m.max_source_length},
        "train": _keyed(cfg.stages.pretrain),
    }
    return artifact(cfg.paths.root, "pretrain", spec)


# News-world knobs that change references or the QA split only, never a document (see newsworld.WorldConfig).
_REFERENCE_ONLY = ("noise", "intrinsic_share", "knowledge_rate", "n_qa", "qa_noise")


def clean_references(cfg: Config) -> Config:
    """The same config on the news world with clean references (noise 0): the same documents and facts (the
    world draws its references' errors from their own stream), so an MLE model trained on it is the paired
    clean-reference ceiling of this config's MLE model (``mle_clean``)."""
    from dataclasses import replace

    if cfg.data.source != "newsworld":
        raise ValueError("the clean-reference MLE model (mle_clean) needs the news world (data=newsworld)")
    return replace(cfg, data=replace(cfg.data, world=replace(cfg.data.world, noise=0.0)))


def mle(cfg: Config) -> Artifact:
    if warm_start(cfg.model) in ("mle", "qagen"):
        raise ValueError(
            f"model.warm_start={cfg.model.warm_start}: the summarizer starts from pretrain or random weights (none)"
        )
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
        "train": _qagen_keyed(cfg.stages.qagen.resolved("qagen")),
    }
    return artifact(cfg.paths.root, "qagen", spec)


def qagen_location(cfg: Config) -> tuple[str, str]:
    """(path or hub id, identity for keys) of the QAGen model used for scoring."""
    if cfg.qagen:
        return cfg.qagen, model_identity(cfg.qagen)
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


def generator(cfg: Config) -> Artifact:
    """The summarizer whose samples are the candidates: the MLE model, or a contrastive variant's (a round > 1)."""
    name = cfg.stages.generate.model
    if name == "mle":
        return mle(cfg)
    if name not in cfg.stages.contrastive.variants:
        raise ValueError(f"stages.generate.model={name!r}: choose mle or a contrastive variant")
    return contrastive(cfg, name)


def round_config(cfg: Config, variant: ContrastiveStageConfig) -> Config:
    """The config whose candidates a contrastive variant's pairs come from: its ``round_from`` model's, or the
    MLE model's for a first round."""
    from dataclasses import replace

    if variant.round_from == variant.variant:
        raise ValueError(f"stages.contrastive.variants.{variant.variant}: round_from cannot name the variant itself")
    generate = replace(cfg.stages.generate, model=variant.round_from or "mle")
    return replace(cfg, stages=replace(cfg.stages, generate=generate))


def start_model(cfg: Config, variant: ContrastiveStageConfig) -> Artifact:
    """The weights a contrastive variant starts from: the MLE model, or its ``round_from`` variant's."""
    return contrastive(cfg, variant.round_from) if variant.round_from else mle(cfg)


def candidates(cfg: Config) -> Artifact:
    knobs = asdict(cfg.stages.generate)
    if knobs["model"] == "mle":  # keys made before the knob stay valid
        del knobs["model"]
    spec = {
        "stage": "generate",
        "mle": generator(cfg).key,
        "data": data(cfg).key,
        "max_source_length": cfg.model.max_source_length,
        "generate": knobs,
    }
    return artifact(cfg.paths.root, "candidates", spec)


def scores(cfg: Config) -> Artifact:
    qagen_key = model_identity(cfg.qagen) if cfg.qagen else qagen(cfg).key
    # token_logprobs: the artifact stores QUALS values and pair counts only, so it changes nothing here (keying it
    # would retrain every contrastive model downstream for a knob that only adds evidence to conseq.score's rows).
    unkeyed = ("batch_size", "max_rows", "token_logprobs")
    quals = cfg.stages.score.quals.keyed(*unkeyed)
    spec = {"stage": "score", "candidates": candidates(cfg).key, "qagen": qagen_key, "quals": quals}
    return artifact(cfg.paths.root, "scores", spec)


def partition_config(
    cfg: Config, scorer: str | None = None, positive: str | None = None, negative_ratio: float | None = None
):
    """``stages.partition`` with a contrastive variant's selection (``selection``) applied; None keeps its value."""
    from dataclasses import replace

    p = cfg.stages.partition
    return replace(
        p,
        scorer=scorer or p.scorer,
        positive=positive or p.positive,
        negative_ratio=p.negative_ratio if negative_ratio is None else negative_ratio,
    )


def partition_overrides(scorer: str, positive: str, negative_ratio: float | None) -> str:
    """The command-line overrides that build the partition of ``selection`` with stage=partition."""
    overrides = f"stages.partition.scorer={scorer}"
    if positive != "reference":
        overrides += f" stages.partition.positive={positive}"
    if negative_ratio is not None:
        overrides += f" stages.partition.negative_ratio={negative_ratio}"
    return overrides


def partition(
    cfg: Config, scorer: str | None = None, positive: str | None = None, negative_ratio: float | None = None
) -> Artifact:
    p = partition_config(cfg, scorer, positive, negative_ratio)
    scorer = p.scorer
    upstream = scores(cfg).key if scorer == "quals" else candidates(cfg).key
    knobs = {k: v for k, v in asdict(p).items() if k not in ("scorer", "examples")}
    if knobs["positive"] == "reference":  # the original's positives: keys made before the knob stay valid
        del knobs["positive"]
    spec = {"stage": "partition", "scorer": scorer, "upstream": upstream, "partition": knobs}
    if scorer in ("random", "oracle"):  # their random draws come from the run's seed (keyed only for them)
        spec["seed"] = cfg.seed
    return artifact(cfg.paths.root, "partition", spec)


def selection(c) -> tuple[str, str, float | None]:
    """The partition a contrastive config trains on: (scorer, positives, negative ratio or None)."""
    return c.partition_scorer, c.partition_positive, c.partition_negative_ratio


def contrastive(cfg: Config, variant: str | None = None) -> Artifact:
    c = cfg.stages.contrastive.resolved(variant)
    spec = {
        "stage": "contrastive",
        "mle": start_model(cfg, c).key,
        "partition": partition(round_config(cfg, c), *selection(c)).key,
        "lengths": [cfg.model.max_source_length, cfg.model.max_target_length],
        # The variant's name is a label only: two names with the same knobs are the same model.
        "train": {
            k: v
            for k, v in _keyed(c).items()
            if k != "variant"
            and (k, v)
            not in (("partition_positive", "reference"), ("partition_negative_ratio", None), ("round_from", None))
        },
    }
    return artifact(cfg.paths.root, "contrastive", spec)


# ---------------------------------------------------------------------------------------------- evaluation


def summarizer_identity(cfg: Config, name: str) -> str | dict[str, str]:
    """How stage=evaluate keys a model of ``stages.evaluate.models``: this config's mle or contrastive variant by its
    artifact key, "reference" (the references themselves) as itself, a folder or hub id by ``model_identity``."""
    base, plus, rerank = name.partition("+")
    if plus:  # "<model>+rerank": that model's beams reranked by stages.evaluate.rerank
        if rerank != "rerank" or not cfg.stages.evaluate.rerank:
            raise ValueError(
                f"stages.evaluate.models: {name!r} needs stages.evaluate.rerank (and the form <model>+rerank)"
            )
        return {"model": summarizer_identity(cfg, base), "rerank": cfg.stages.evaluate.rerank}
    if name in ("reference", "mle"):
        return "reference" if name == "reference" else mle(cfg).key
    if name == "mle_clean":
        return mle(clean_references(cfg)).key
    if name in cfg.stages.contrastive.variants:
        return contrastive(cfg, name).key
    return model_identity(name)


def evaluation_settings(cfg: Config, rows: int) -> dict[str, Any]:
    """What every model's evaluation is keyed on besides the model (``rows``: the rows of the split evaluated)."""
    s = cfg.stages.evaluate
    quals = cfg.stages.score.quals.keyed("token_logprobs")  # no QA pairs kept
    extra = None
    if s.extra_scorers:
        from conseq.scoring.base import extra_metrics_identity

        extra = extra_metrics_identity(cfg, tuple(s.extra_scorers))
    return {
        "data": data(cfg).key,
        "split": s.split,
        "rows": rows,
        "decoding": [s.num_beams, s.min_new_tokens, s.max_new_tokens, s.sample_top_k],
        "sample_seed": cfg.seed if s.sample_top_k else None,
        "quals": [qagen_location(cfg)[1], quals] if s.quals else None,
        "ner": s.entities and s.ner_model,
        "extra": extra,
        "lengths": [cfg.model.max_source_length, cfg.model.max_target_length],
    }


def model_evaluation(cfg: Config, identity: str, settings: dict[str, Any]) -> Artifact:
    """One model's evaluation (predictions.jsonl and its metrics), cached apart from the comparison."""
    return artifact(cfg.paths.root, "eval_model", {"model": identity, **settings})


def comparison(cfg: Config, evaluations: dict[str, str]) -> Artifact:
    """stage=evaluate's product (table.md, every model's metrics) for {model name: its evaluation's key}."""
    return artifact(cfg.paths.root, "evaluate", {"models": evaluations})


def evaluated_models(cfg: Config, names: list[str]) -> list[str]:
    """The models stage=evaluate compares when asked for ``names``: those, then "<model>+rerank" for each of
    ``stages.evaluate.rerank_models`` when ``stages.evaluate.rerank`` is set."""
    s = cfg.stages.evaluate
    reranked = [f"{m}+rerank" for m in (s.rerank_models if s.rerank and s.quals else [])]  # QUALS's model reranks
    return [*names, *(n for n in reranked if n not in names)]


def evaluation(cfg: Config, names: list[str]) -> Artifact:
    """The comparison stage=evaluate writes for the models ``names`` (with the references, which it adds, and
    ``evaluated_models``' reranked ones). Reads the evaluated split's length (the data must be built); needs the
    scorer models it keys."""
    s = cfg.stages.evaluate
    rows = len(prepare.read_split(require(data(cfg), "stage=evaluate", "dataset"), s.split)[: s.max_rows])
    settings = evaluation_settings(cfg, rows)
    models = ["reference", *evaluated_models(cfg, names)]
    return comparison(cfg, {n: model_evaluation(cfg, summarizer_identity(cfg, n), settings).key for n in models})


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
        "train": _qagen_keyed(cfg.stages.qagen.resolved("qg")),
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
        return cfg.qg, model_identity(cfg.qg)
    art = require(qg(cfg), "stage=qagen stages.qagen.mode=qg", "QAGS question generator")
    return str(art.path), art.key


def qa_location(cfg: Config) -> tuple[str, str]:
    if cfg.qa:
        return cfg.qa, model_identity(cfg.qa)
    art = require(qa(cfg), "stage=qa", "QAGS question-answering model")
    return str(art.path), art.key


def factcc_location(cfg: Config) -> tuple[str, str]:
    if cfg.factcc:
        return cfg.factcc, model_identity(cfg.factcc)
    art = require(factcc(cfg), "stage=factcc", "FactCC classifier")
    return str(art.path), art.key


# ------------------------------------------------------------------------------------------------- the pipeline


@dataclass
class PipelinePlan:
    """What stage=pipeline builds for a config (and stage=report shows): the contrastive variants in training
    order, the first round's (scorer, positives) partitions, whether the clean-reference MLE model is trained,
    and the models evaluate compares (before its reranked ones)."""

    variants: list[str]
    partitions: list[tuple[str, str]]
    ceiling: bool
    models: list[str]
    left_out: list[str]


def pipeline_plan(cfg: Config) -> PipelinePlan:
    world = cfg.data.source == "newsworld"
    contrastive = cfg.stages.contrastive
    # The *_oracle variants need the news world's oracle: left out elsewhere.
    left_out = [v for v in cfg.stages.pipeline.variants if contrastive.resolved(v).partition_scorer == "oracle"]
    left_out = [] if world else left_out
    ordered: list[str] = []

    def add(name: str, chain: tuple[str, ...] = ()) -> None:  # each variant after the one its round starts from
        if name in chain:
            raise ValueError(f"stages.contrastive: round_from loops ({' -> '.join((*chain, name))})")
        if name not in ordered:
            if start := contrastive.resolved(name).round_from:
                add(start, (*chain, name))
            ordered.append(name)

    for name in cfg.stages.pipeline.variants:
        if name not in left_out:
            add(name)
    first = [contrastive.resolved(v) for v in ordered if not contrastive.resolved(v).round_from]
    partitions = list(dict.fromkeys(selection(c) for c in first))
    ceiling = cfg.stages.pipeline.ceiling and world
    models = list(cfg.stages.evaluate.models) or ["mle", *(["mle_clean"] if ceiling else []), *ordered]
    return PipelinePlan(ordered, partitions, ceiling, models, left_out)
