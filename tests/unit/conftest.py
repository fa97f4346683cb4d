"""A small hand-made cache (data, candidates, scores, partition, evaluations) in the layout the stages write, for the
report and human-study tests: seconds instead of a pipeline run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conseq.artifacts import Artifact, artifact, write_jsonl

# Texts with markup in them: the report must show them as text.
TRICKY = 'Tom <b>Reyes</b> & "co" <script>window.hacked = 1</script>'


def _build(root: Path, kind: str, spec: dict, files: dict[str, list[dict] | str], metrics: dict) -> Artifact:
    art = artifact(root, kind, spec)
    out = art.start()
    for name, content in files.items():
        if isinstance(content, str):
            (out / name).write_text(content)
        else:
            write_jsonl(out / name, content)
    art.finish(metrics)
    return art


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory) -> dict[str, Artifact]:
    root = tmp_path_factory.mktemp("fake_cache")
    docs = [
        {
            "id": f"test-{i:02d}",
            "document": f"Anna Berg of Delta Bank won {i} games in Oslo on Monday, officials said.",
            "summary": f"Anna Berg won {i} games in Oslo.",
        }
        for i in range(12)
    ]
    data = _build(root, "data", {"fake": "data"}, {"test.jsonl": docs}, {})
    rows = [
        {
            "id": d["id"],
            "document": d["document"],
            "reference": d["summary"],
            "candidates": [f"Berg won {i} games.", TRICKY if i == 3 else f"Anna Berg won {i + 1} games in Lagos."],
        }
        for i, d in enumerate(docs)
    ]
    candidates = _build(root, "candidates", {"stage": "generate", "fake": 1}, {"candidates.jsonl": rows}, {})
    scores = [
        {
            "id": r["id"],
            "reference_quals": -0.1 * i,
            "candidate_quals": [None if i == 5 else -0.2 * i, -0.5 - 0.1 * i],
            "reference_pairs": 2,
            "candidate_pairs": [0 if i == 5 else 1, 3],
        }
        for i, r in enumerate(rows)
    ]
    quals = {"num_groups": 4, "max_qas": 10}
    score_spec = {"stage": "score", "candidates": candidates.key, "qagen": "some/hub-qagen", "quals": quals}
    score = _build(root, "scores", score_spec, {"scores.jsonl": scores}, {"rows": 12})
    pairs = [
        {
            "id": r["id"],
            "document": r["document"],
            "positive": r["reference"],
            "negative": r["candidates"][1],
            "positive_score": s["reference_quals"],
            "negative_score": s["candidate_quals"][1],
        }
        for r, s in list(zip(rows, scores))[:6]
    ]
    cuts = {"documents": 12, "kept_documents": 6, "pairs": 6, "negative_cut_score": -1.0, "positive_cut_score": -0.5}
    partition = _build(
        root,
        "partition",
        {"stage": "partition", "scorer": "quals", "upstream": score.key, "partition": {}},
        {"pairs.jsonl": pairs},
        {**cuts, "positive_cut_share_by_kind": {"clean": 0.5, "extrinsic:age": 0.25}},
    )
    models = {
        "reference": [d["summary"] for d in docs],
        "mle": [f"Anna Berg, 31, won {i} games in Oslo." for i in range(12)],
        "conseq": [
            f"Anna Berg won {i} games in Oslo." if i else "Anna Berg, 31, won 0 games in Oslo." for i in range(12)
        ],
    }
    evaluations = {}
    for name, predictions in models.items():
        records = []
        for i, (doc, prediction) in enumerate(zip(docs, predictions)):
            flagged = ", 31," in prediction
            records.append(
                {
                    "id": doc["id"],
                    "reference": doc["summary"],
                    "prediction": TRICKY if (name == "mle" and i == 4) else prediction,
                    "oracle": {"extrinsic": ["age '31' is not in the document"] if flagged else [], "intrinsic": [],
                               "readable": True},
                    "quals": -0.1 * i,
                }
            )  # fmt: skip
        spec = {"model": name, "data": data.key, "split": "test", "rows": 12, "ner": False}
        evaluations[name] = _build(root, "eval_model", spec, {"predictions.jsonl": records}, {"artifact_key": "x"})
    table = (
        "| model | R1 | halluc. |\n|---|---:|---:|\n| reference | 100.00 | 0.000 |\n| mle | 40.00 | 1.000 |\n"
        "| conseq | 45.00 | 0.083 |\n\n| errors by kind | extrinsic:age |\n|---|---:|\n| reference | 0.000 |\n"
        "| mle | 1.000 |\n| conseq | 0.083 |"
    )
    evaluate = _build(
        root,
        "evaluate",
        {"models": {name: art.key for name, art in evaluations.items()}},
        {"table.md": table},
        {"models": {name: {"rouge1": 40.0} for name in models}},
    )
    return {"data": data, "candidates": candidates, "score": score, "partition": partition, "evaluate": evaluate}


@pytest.fixture(scope="session")
def scored_file(tmp_path_factory) -> Path:
    """A conseq.score output with per-token log-probabilities (quals.token_logprobs=true), made by hand."""
    import json

    path = tmp_path_factory.mktemp("scored") / "scored.jsonl"
    tokens = ["Who", " won", "?", "<sep>", " Anna", " Berg", "</s>"]
    rows = []
    for i in range(5):
        pairs = [
            {
                "question": "Who won?",
                "answer": "Anna Berg",
                "ll_source": -1.0 - i,
                "ll_summary": -0.5,
                "tokens": tokens,
                "lp_source": [-0.1, -0.2, -0.3, -0.1, -(3.0 + i), -(2.0 + i), -0.1],
                "lp_summary": [-0.1, -0.2, -0.3, -0.1, -0.9, -0.2, -0.1],
            }
        ]
        summary = TRICKY if i == 2 else f"Anna Berg won {i} games."
        quals = None if i == 4 else -0.5 - i
        rows.append({"id": f"r{i}", "document": "Anna Berg won.", "summary": summary, "quals": quals,
                     "qa_pairs": pairs if quals is not None else []})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
