"""Datasets and tokenizers as cached artifacts: the summarization splits, the QA split, the tiny tokenizer.

Each is built once (validated, normalised to ``{"id", "document", "summary", …}`` or the SQuAD layout) and
stored as one jsonl file per split, keyed by what determines its content: the world's settings, or the input
files' bytes, or the hub id and config. Stages read the stored rows, so a later run never re-validates, and a
bad input fails before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conseq.artifacts import Artifact, read_jsonl, write_jsonl
from conseq.config import DataConfig, ModelConfig, QADataConfig
from conseq.data import loading

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# When a local dataset has no validation file, hold out this share of train (at most MAX_HELD_OUT rows).
HELD_OUT_SHARE = 0.05
MAX_HELD_OUT = 500


def _file_fingerprint(path: str, knob: str) -> dict[str, str]:
    file = Path(path)
    if file.is_dir():
        raise loading.BadInputError(f"a directory, not a file ({knob})", file=path)
    if not file.is_file():
        raise loading.BadInputError(f"no such file ({knob})", file=path)
    digest = hashlib.sha256()
    try:
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise loading.BadInputError(f"cannot read ({e.strerror or e}; {knob})", file=path) from e
    return {"path": str(file.resolve()), "sha256": digest.hexdigest()}


def _caps(cfg: DataConfig) -> dict[str, int | None]:
    return {"train": cfg.max_train_rows, "validation": cfg.max_validation_rows, "test": cfg.max_test_rows}


def summarization_spec(cfg: DataConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": cfg.source, "caps": _caps(cfg), "on_bad_row": cfg.on_bad_row}
    if cfg.source == "newsworld":
        from conseq.data.newsworld import QA_ONLY

        # Keyed without the QA split's settings, so a bigger QAGen corpus does not retrain the summarizer.
        spec["world"] = {k: v for k, v in asdict(cfg.world).items() if k not in QA_ONLY}
    elif cfg.source == "hub":
        if not cfg.hub_id:
            raise ValueError("data.source=hub needs data.hub_id (e.g. EdinburghNLP/xsum)")
        spec.update(hub_id=cfg.hub_id, hub_config=cfg.hub_config)
    elif cfg.source == "files":
        files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
        if not any(files.values()):
            raise ValueError("data=jsonl needs at least data.train_file (and usually validation/test files)")
        spec["files"] = {split: _file_fingerprint(p, f"data.{split}_file") for split, p in files.items() if p}
    else:
        raise ValueError(f"data.source={cfg.source!r}: choose newsworld, hub or files")
    if cfg.source != "newsworld":
        spec["columns"] = [cfg.document_column, cfg.summary_column, cfg.id_column]
    return spec


def build_summarization(art: Artifact, cfg: DataConfig, *, force: bool = False) -> Artifact:
    """Build the normalised summarization splits (``<split>.jsonl``) of ``art`` if missing."""
    if art.done and not force:
        return art
    splits, metrics = _load_summarization(cfg)
    out = art.start(force=force)
    for split, rows in splits.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    art.finish(metrics)
    log.info("data %s: %s", art.path, {s: len(r) for s, r in splits.items()})
    return art


def _load_summarization(cfg: DataConfig) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    caps = _caps(cfg)
    metrics: dict[str, Any] = {}
    if cfg.source == "newsworld":
        from conseq.data import newsworld

        world = newsworld.build_world(newsworld.WorldConfig(**{**asdict(cfg.world), "n_qa": 0}))
        splits = {s: world[s][: caps[s]] if caps[s] else world[s] for s in SPLITS}
    else:
        splits = {}
        for split in SPLITS:
            path = getattr(cfg, f"{split}_file") if cfg.source == "files" else None
            if cfg.source == "files" and not path:
                continue
            rows, stats = loading.load_summarization(
                split=split,
                path=path,
                hub_id=cfg.hub_id if cfg.source == "hub" else None,
                hub_config=cfg.hub_config,
                document_column=cfg.document_column,
                summary_column=cfg.summary_column,
                id_column=cfg.id_column,
                on_bad_row=cfg.on_bad_row,
                max_rows=caps[split],
            )
            splits[split] = rows
            metrics[f"{split}_rows_read"] = stats.rows_read
            metrics[f"{split}_rows_skipped"] = stats.rows_skipped
            for reason, count in stats.skipped_by_reason.items():
                metrics[f"{split}_skipped_{reason}"] = count
        if "validation" not in splits and "train" in splits:
            source = cfg.train_file if cfg.source == "files" else cfg.hub_id
            splits["train"], splits["validation"] = _hold_out(splits["train"], source, "data.validation_file")
            metrics["validation_held_out_from_train"] = len(splits["validation"])
    metrics.update({f"{split}_rows": len(rows) for split, rows in splits.items()})
    metrics["rows_skipped"] = sum(v for k, v in metrics.items() if k.endswith("_rows_skipped"))
    return splits, metrics


def _hold_out(rows: list[dict], source: str | None, knob: str) -> tuple[list[dict], list[dict]]:
    n = min(MAX_HELD_OUT, max(1, int(len(rows) * HELD_OUT_SHARE)))
    if len(rows) < 2:
        raise loading.BadInputError(
            f"{len(rows)} usable training row: a validation split is held out of at least 2 (or give {knob})",
            file=source,
        )
    return rows[:-n], rows[-n:]


def read_split(art: Artifact, split: str) -> list[dict]:
    path = art.path / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"the dataset has no {split!r} split ({art.path}); give data.{split}_file or choose another split"
        )
    return read_jsonl(path)


def qa_spec(cfg: QADataConfig, world: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": cfg.source,
        "caps": [cfg.max_train_rows, cfg.max_validation_rows],
        "on_bad_row": cfg.on_bad_row,
    }
    if cfg.source == "newsworld":
        spec.update(world=world, validation_share=cfg.validation_share)
    elif cfg.source == "hub":
        spec.update(hub_id=cfg.hub_id or "squad", hub_config=cfg.hub_config)
    elif cfg.source == "files":
        if not cfg.train_file:
            raise ValueError("qa_data=squad_files needs qa_data.train_file")
        spec["files"] = {
            s: _file_fingerprint(p, f"qa_data.{s}_file")
            for s, p in (("train", cfg.train_file), ("validation", cfg.validation_file))
            if p
        }
    else:
        raise ValueError(f"qa_data.source={cfg.source!r}: choose newsworld, hub or files")
    return spec


def build_qa(art: Artifact, cfg: QADataConfig, world: dict[str, Any], *, force: bool = False) -> Artifact:
    """Build the SQuAD-layout QA rows (``train.jsonl``, ``validation.jsonl``) of ``art`` if missing.

    ``world`` is the news world's settings (``data.world``), used when ``qa_data.source=newsworld``.
    """
    if art.done and not force:
        return art
    metrics: dict[str, Any] = {}
    if cfg.source == "newsworld":
        from conseq.data import newsworld

        rows = newsworld.build_world(newsworld.WorldConfig(**world))["qa"]
        # Hold out whole passages (not questions) so validation passages are unseen.
        contexts = sorted({r["context"] for r in rows}, key=lambda c: hashlib.sha256(c.encode()).hexdigest())
        held = set(contexts[: max(1, int(len(contexts) * cfg.validation_share))])
        splits = {
            "train": [r for r in rows if r["context"] not in held],
            "validation": [r for r in rows if r["context"] in held],
        }
    else:
        splits = {}
        for split, path in (("train", cfg.train_file), ("validation", cfg.validation_file)):
            if cfg.source == "files" and not path:
                continue
            rows, stats = loading.load_squad(
                split=split,
                path=path if cfg.source == "files" else None,
                hub_id=(cfg.hub_id or "squad") if cfg.source == "hub" else None,
                hub_config=cfg.hub_config,
                on_bad_row=cfg.on_bad_row,
            )
            splits[split] = rows
            metrics[f"{split}_rows_read"] = stats.rows_read
            metrics[f"{split}_rows_skipped"] = stats.rows_skipped
            for reason, count in stats.skipped_by_reason.items():
                metrics[f"{split}_skipped_{reason}"] = count
        if "validation" not in splits:
            source = cfg.train_file if cfg.source == "files" else cfg.hub_id or "squad"
            splits["train"], splits["validation"] = _hold_out(splits["train"], source, "qa_data.validation_file")
    for split, cap in (("train", cfg.max_train_rows), ("validation", cfg.max_validation_rows)):
        if cap:
            splits[split] = splits[split][:cap]
    metrics.update({f"{split}_rows": len(rows) for split, rows in splits.items()})
    out = art.start(force=force)
    for split, rows in splits.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    art.finish(metrics)
    return art


def tokenizer_spec(model_cfg: ModelConfig, data_key: str) -> dict[str, Any]:
    return {
        "kind": "byte-level-bpe",
        "vocab_size": model_cfg.vocab_size,
        "model_max_length": model_cfg.max_source_length,
        "data": data_key,
    }


def build_tokenizer(art: Artifact, data_art: Artifact, model_cfg: ModelConfig, *, force: bool = False) -> Artifact:
    """Train the from-scratch byte-level BPE tokenizer on the training documents and summaries."""
    from conseq.modeling import train_tokenizer

    if art.done and not force:
        return art
    rows = read_split(data_art, "train")
    texts = [r["document"] for r in rows] + [r["summary"] for r in rows]
    tokenizer = train_tokenizer(texts, vocab_size=model_cfg.vocab_size, model_max_length=model_cfg.max_source_length)
    out = art.start(force=force)
    tokenizer.save_pretrained(out)
    art.finish({"vocab_size": len(tokenizer), "trained_on_texts": len(texts)})
    return art
