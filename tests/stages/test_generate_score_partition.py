"""stage=generate, score and partition through the real entry point on the smoke news world, plus the
selection logic of partition as a pure function."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conseq.artifacts import read_jsonl
from conseq.data.newsworld import check_summary
from conseq.stages.partition import lowest_candidates, select_pairs
from conseq.stages.score import read_store
from tests.conftest import run_stage as run_entry
from tests.stages.conftest import ENV, MODEL_KINDS, SMOKE, copy_root, kill_when

GENERATE = ("stage=generate", *SMOKE)
SCORE = ("stage=score", *SMOKE)
PARTITION = ("stage=partition", *SMOKE)
PAIR_KEYS = {"id", "document", "positive", "negative", "positive_score", "negative_score"}
K = 2  # debug/smoke's stages.generate.num_candidates
TRAIN_ROWS = 64  # debug/smoke's data.world.n_train


def run_stage(root: Path, *overrides: str) -> tuple[dict, object]:
    return run_entry(root, *overrides, env=ENV)


def candidates_of(result: dict) -> list[dict]:
    return read_jsonl(Path(result["artifact"]) / "candidates.jsonl")


def scores_of(result: dict) -> list[dict]:
    return read_jsonl(Path(result["artifact"]) / "scores.jsonl")


def assert_same_scores(got: list[dict], expected: list[dict]) -> None:
    """Equal up to float noise (other batch compositions pad differently)."""
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert a["reference_pairs"] == b["reference_pairs"] and a["candidate_pairs"] == b["candidate_pairs"]
        for x, y in zip([a["reference_quals"], *a["candidate_quals"]], [b["reference_quals"], *b["candidate_quals"]]):
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-3, abs=1e-6)


# ------------------------------------------------------------------------------------------------ generate


@pytest.fixture(scope="module")
def generated(upstream) -> dict:
    result, _ = run_stage(upstream, *GENERATE)
    return result


def test_generate_writes_k_candidates_per_train_row(upstream, generated):
    assert generated["stage"] == "generate" and generated["cache_hit"] is False
    path = Path(generated["artifact"])
    assert (path / "_SUCCESS").is_file() and not path.with_name(path.name + ".partial").exists()
    rows = candidates_of(generated)
    train = read_jsonl(next((upstream / "cache" / "data").glob("*/train.jsonl")))
    assert [r["id"] for r in rows] == [r["id"] for r in train]
    for row, record in zip(rows, train, strict=True):
        assert row["document"] == record["document"] and row["reference"] == record["summary"]
        assert len(row["candidates"]) == K and all(isinstance(c, str) for c in row["candidates"])
        assert row["facts"] == record["facts"]  # kept for the oracle
    m = generated["metrics"]
    assert m["rows"] == TRAIN_ROWS and m["candidates"] == TRAIN_ROWS * K and m["shards"] == 4
    assert 0 <= m["duplicate_candidate_share"] <= 1 and 0 <= m["candidate_hallucination_rate"] <= 1
    assert "reference_hallucination_rate" in m


def test_generate_second_run_is_a_cache_hit(upstream, generated):
    again, _ = run_stage(upstream, *GENERATE)
    assert again["cache_hit"] is True and again["artifact"] == generated["artifact"]
    assert again["metrics"] == generated["metrics"]


def test_generate_max_documents_takes_the_first_rows_with_the_same_candidates(upstream, generated):
    result, _ = run_stage(upstream, *GENERATE, "stages.generate.max_documents=32")
    assert result["artifact"] != generated["artifact"]
    rows, full = candidates_of(result), candidates_of(generated)
    # Shards are seeded by their index: whole shards (smoke: 16 rows) come out as in the full run.
    assert [r["id"] for r in rows] == [r["id"] for r in full[:32]]
    assert rows == full[:32]


def test_generate_diverse_beam_mode(upstream, generated):
    result, _ = run_stage(upstream, *GENERATE, "stages.generate.mode=diverse_beam", "stages.generate.num_candidates=3")
    assert result["artifact"] != generated["artifact"] and result["metrics"]["mode"] == "diverse_beam"
    rows = candidates_of(result)
    assert len(rows) == TRAIN_ROWS and all(len(r["candidates"]) == 3 for r in rows)


@pytest.mark.slow
def test_generate_killed_run_resumes_to_the_clean_result(upstream, tmp_path):
    overrides = [*GENERATE, "stages.generate.shard_size=2", "stages.generate.num_candidates=3"]
    shards = 32  # 64 rows / 2
    killed = copy_root(upstream, tmp_path / "killed")

    def written() -> list[Path]:
        return list((killed / "cache" / "candidates").glob("*.partial/shards/*.jsonl"))

    assert kill_when(killed, overrides, lambda: len(written()) >= 1) == -9
    n_written = len(written())
    assert 1 <= n_written < shards, "the run must be killed between its first and its last shard"
    assert not list((killed / "cache" / "candidates").glob("*/_SUCCESS"))

    resumed, _ = run_stage(killed, *overrides)
    assert resumed["metrics"]["shards_resumed"] == n_written and resumed["metrics"]["shards"] == shards
    clean, _ = run_stage(copy_root(upstream, tmp_path / "clean"), *overrides)
    assert clean["metrics"]["shards_resumed"] == 0
    resumed_rows, clean_rows = candidates_of(resumed), candidates_of(clean)
    ids = [r["id"] for r in resumed_rows]
    assert len(ids) == len(set(ids)) == TRAIN_ROWS
    assert resumed_rows == clean_rows  # same ids, order and candidate texts


# --------------------------------------------------------------------------------------------------- score


@pytest.fixture(scope="module")
def scored(upstream, generated, answering_qagen) -> dict:
    result, _ = run_stage(upstream, *SCORE, f"qagen={answering_qagen}")
    return result


def test_score_covers_every_reference_and_candidate(generated, scored):
    assert scored["stage"] == "score" and scored["cache_hit"] is False
    rows, scores = candidates_of(generated), scores_of(scored)
    assert [s["id"] for s in scores] == [r["id"] for r in rows]
    values = []
    for s in scores:
        assert len(s["candidate_quals"]) == len(s["candidate_pairs"]) == K
        for quals, pairs in zip(
            [s["reference_quals"], *s["candidate_quals"]], [s["reference_pairs"], *s["candidate_pairs"]]
        ):
            assert quals is None or isinstance(quals, float)
            assert isinstance(pairs, int) and (quals is None) == (pairs == 0)
            values.append(quals)
    m = scored["metrics"]
    assert sum(v is not None for v in values) > len(values) // 2  # the answering QAGen finds "e" in most texts
    assert m["reference_quals_null"] + m["candidate_quals_null"] == values.count(None)
    assert m["candidate_quals_p10"] <= m["candidate_quals_p50"] <= m["candidate_quals_p90"]
    assert m["items_scored"] == m["items"] > 0 and m["items_reused"] == 0


def test_score_with_the_smoke_qagen(with_qagen, generated):
    result, _ = run_stage(with_qagen, *SCORE)
    scores = scores_of(result)
    assert [s["id"] for s in scores] == [r["id"] for r in candidates_of(generated)]
    assert all(len(s["candidate_quals"]) == K for s in scores)


def test_read_store_ignores_a_truncated_last_line(tmp_path):
    (tmp_path / "items-a-p0.jsonl").write_text('{"key": "x", "quals": -1.5, "n_pairs": 2}\n{"key": "y", "qu')
    (tmp_path / "items-b-p1.jsonl").write_text('{"key": "y", "quals": null, "n_pairs": 0}\n')
    assert read_store(tmp_path) == {"x": {"quals": -1.5, "n_pairs": 2}, "y": {"quals": None, "n_pairs": 0}}
    (tmp_path / "items-c-p0.jsonl").write_text('{"key": "z", "qu\n{"key": "w", "quals": 1.0, "n_pairs": 1}\n')
    with pytest.raises(ValueError, match=r"items-c-p0\.jsonl, line 1"):
        read_store(tmp_path)


@pytest.mark.slow
def test_score_killed_run_resumes_and_a_new_artifact_reuses_every_item(upstream, scored, answering_qagen, tmp_path):
    root = copy_root(upstream, tmp_path / "root", (*MODEL_KINDS, "candidates"))
    # One document per QualsScorer call (batch_size changes no value): many flushes, a wide window to kill in.
    overrides = [*SCORE, f"qagen={answering_qagen}", "stages.score.quals.batch_size=1"]

    def stored() -> int:
        return sum(p.read_text().count("\n") for p in (root / "cache" / "quals_items").glob("*/items-*.jsonl"))

    assert kill_when(root, overrides, lambda: stored() >= 1) == -9
    at_kill = stored()
    assert not list((root / "cache" / "scores").glob("*/_SUCCESS"))

    resumed, _ = run_stage(root, *overrides)
    m = resumed["metrics"]
    assert m["items"] == scored["metrics"]["items"] and m["items_reused"] >= at_kill >= 1
    assert m["items_scored"] == m["items"] - m["items_reused"]
    assert_same_scores(scores_of(resumed), scores_of(scored))

    # Different sharding, same scores artifact (shard_size changes no value): force rebuilds it from the store.
    again, _ = run_stage(root, *overrides, "stages.score.shard_size=5", "force=true")
    assert again["cache_hit"] is False and again["metrics"]["items_scored"] == 0
    assert again["metrics"]["items_reused"] == again["metrics"]["items"]
    assert_same_scores(scores_of(again), scores_of(resumed))


# ----------------------------------------------------------------------------------------------- partition


def test_partition_by_quals_keeps_the_intersection_of_the_cuts(generated, scored, upstream, answering_qagen):
    ratios = ("stages.partition.positive_ratio=0.6", "stages.partition.negative_ratio=0.6")  # cuts must overlap
    result, _ = run_stage(upstream, *PARTITION, f"qagen={answering_qagen}", *ratios)
    assert result["stage"] == "partition" and result["cache_hit"] is False
    path, m = Path(result["artifact"]), result["metrics"]
    assert (path / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (path / "examples.md").read_text().startswith("# Partition examples")
    cut = round(0.6 * TRAIN_ROWS)
    assert m["documents"] == TRAIN_ROWS
    assert m["negative_cut"] == min(cut, m["negative_eligible"]) and m["positive_cut"] == min(
        cut, m["positive_eligible"]
    )
    assert 0 < m["kept_documents"] <= min(m["negative_cut"], m["positive_cut"]) and m["pairs"] == m["kept_documents"]
    assert 0 <= m["kept_negatives_hallucinated"] <= 1 and 0 <= m["kept_positives_hallucinated"] <= 1
    rows = {r["id"]: r for r in candidates_of(generated)}
    scores = {s["id"]: s for s in scores_of(scored)}
    # Per error kind of the references (and the clean ones): the share at or above the positive cut line.
    by_kind = m["positive_cut_share_by_kind"]
    verdicts = [(check_summary(r, r["reference"]), scores[i]["reference_quals"]) for i, r in rows.items()]
    for kind, share in by_kind.items():
        group = [q for v, q in verdicts if (kind in v.kinds) or (kind == "clean" and not v.kinds)]
        passed = sum(q is not None and q >= m["positive_cut_score"] for q in group) / len(group)
        assert share == pytest.approx(passed, abs=1e-4)
    assert "clean" in by_kind and any(k.startswith(("extrinsic:", "intrinsic:")) for k in by_kind)
    pairs = read_jsonl(path / "pairs.jsonl")
    assert len(pairs) == m["pairs"]
    for pair in pairs:
        assert set(pair) == PAIR_KEYS
        row, s = rows[pair["id"]], scores[pair["id"]]
        assert pair["document"] == row["document"] and pair["positive"] == row["reference"]
        lowest = min(q for q in s["candidate_quals"] if q is not None)
        assert pair["negative"] == row["candidates"][s["candidate_quals"].index(lowest)]
        assert pair["negative_score"] == lowest <= m["negative_cut_score"]
        assert pair["positive_score"] == s["reference_quals"] >= m["positive_cut_score"]


def test_partition_by_rouge_selects_only_negatives(generated, upstream):
    # The paper's 30% cut, stated here since debug=smoke loosens the ratios for its 64 documents.
    result, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=rouge", "stages.partition.negative_ratio=0.3")
    m, path = result["metrics"], Path(result["artifact"])
    assert m["scorer"] == "rouge" and "ROUGE cannot rank" in m["positives"]
    assert m["positive_eligible"] == m["positive_cut"] == TRAIN_ROWS
    assert m["kept_documents"] == m["negative_cut"] == min(round(0.3 * TRAIN_ROWS), m["negative_eligible"])
    pairs = read_jsonl(path / "pairs.jsonl")
    assert len(pairs) == m["pairs"] and all(set(p) == PAIR_KEYS and p["positive_score"] is None for p in pairs)
    assert all(0 <= p["negative_score"] <= m["negative_cut_score"] for p in pairs)
    assert (path / "histogram.png").is_file()


def test_partition_at_random_is_seeded_and_pairs_real_candidates(generated, upstream):
    result, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=random")
    m, path = result["metrics"], Path(result["artifact"])
    assert m["scorer"] == "random" and result["cache_hit"] is False
    # Every reference and candidate is eligible; the kept documents are the intersection of the two random cuts.
    assert m["positive_eligible"] == m["negative_eligible"] == TRAIN_ROWS
    assert 0 < m["kept_documents"] <= min(m["positive_cut"], m["negative_cut"]) and m["pairs"] == m["kept_documents"]
    rows = {r["id"]: r for r in candidates_of(generated)}
    pairs = read_jsonl(path / "pairs.jsonl")
    for pair in pairs:
        row = rows[pair["id"]]
        assert pair["positive"] == row["reference"] and pair["negative"] in row["candidates"]
    assert (path / "histogram.png").is_file()
    again, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=random")
    assert again["cache_hit"] is True and again["artifact"] == result["artifact"]
    other, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=random", "seed=1")
    assert other["cache_hit"] is False and other["artifact"] != result["artifact"]
    assert [p["id"] for p in read_jsonl(Path(other["artifact"]) / "pairs.jsonl")] != [p["id"] for p in pairs]


def test_partition_by_the_oracle_keeps_clean_positives_and_each_documents_worst_candidate(generated, upstream):
    result, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=oracle")
    m, path = result["metrics"], Path(result["artifact"])
    assert m["scorer"] == "oracle" and m["pairs"] == m["kept_documents"] > 0
    rows = {r["id"]: r for r in candidates_of(generated)}

    def errors(row, text):
        verdict = check_summary(row, text)
        return len(verdict.extrinsic) + len(verdict.intrinsic)

    clean = sum(errors(r, r["reference"]) == 0 for r in rows.values())
    for pair in read_jsonl(path / "pairs.jsonl"):
        row = rows[pair["id"]]
        # A clean reference outranks every noisy one, so while the positive cut holds only clean ones, every
        # kept positive is clean; the negative is a candidate with the document's largest error count.
        if m["positive_cut"] <= clean:
            assert errors(row, pair["positive"]) == 0
        assert errors(row, pair["negative"]) == max(errors(row, c) for c in row["candidates"] if c.strip())
    again, _ = run_stage(upstream, *PARTITION, "stages.partition.scorer=oracle")
    assert again["cache_hit"] is True and again["artifact"] == result["artifact"]


def test_partition_by_the_oracle_needs_the_news_world(tmp_path):
    # The check comes first: no data file is read and nothing is written.
    result, proc = run_entry(
        tmp_path, "stage=partition", "stages.partition.scorer=oracle", "data=jsonl", "data.train_file=x.jsonl",
        check=False, env=ENV,
    )  # fmt: skip
    assert proc.returncode != 0 and result is None
    assert "stages.partition.scorer=oracle needs the news world" in proc.stderr and "'files'" in proc.stderr
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------- partition (pure)


def test_select_pairs_follows_the_original_cuts():
    # Six documents. Candidate scores per document (None = no QA pair survived):
    refs = [0.9, 0.8, None, 0.7, 0.1, 0.8]
    cands = [
        [-2.0, -3.0, -3.0],  # tie at the minimum: the first index (1) is the negative
        [-1.0, None],  # nulls ignored
        [-5.0, -4.0],  # reference unscored: never a positive
        [None, None],  # no scored candidate: no negative
        [-6.0],  # lowest negative, but the reference is at the bottom
        [-0.5, -0.2],
    ]
    sel = select_pairs(refs, cands, positive_ratio=0.5, negative_ratio=0.5)
    # round(0.5 · 6) = 3 each: negatives 4 (-6), 2 (-5), 0 (-3); positives 0 (.9), 1 (.8), 5 (.8, tie keeps order)
    assert sel.kept == [(0, [1])]
    assert sel.negatives[1] == [0] and 3 not in sel.negatives
    c = sel.counts
    assert (c["documents"], c["no_negative"], c["negative_eligible"], c["positive_eligible"]) == (6, 1, 5, 5)
    assert (c["negative_cut"], c["positive_cut"], c["kept_documents"]) == (3, 3, 1)
    assert c["negative_cut_score"] == -3.0 and c["positive_cut_score"] == 0.8


def test_select_pairs_rounds_like_python_and_cuts_are_capped_by_eligible_documents():
    refs = [1.0, 2.0, 3.0, 4.0, 5.0]
    cands = [[-1.0], [-2.0], [-3.0], [None], [-5.0]]
    # round(0.3 · 5) = round(1.5) = 2 (banker's rounding, as Python's round); round(0.9 · 5) = 4 (only 4 scored)
    sel = select_pairs(refs, cands, positive_ratio=0.3, negative_ratio=0.9)
    assert sel.counts["positive_cut"] == 2 and sel.counts["negative_cut"] == 4
    assert sel.kept == [(4, [0])]  # positives {4, 3} ∩ negatives {4, 2, 1, 0}
    none = select_pairs(refs, cands, positive_ratio=0.0, negative_ratio=0.3)
    assert none.kept == [] and none.counts["positive_cut_score"] is None


def test_select_pairs_thresholds_rouge_mode_and_several_negatives():
    refs = [0.5, -0.5, 0.2]
    cands = [[-1.0, -2.0], [-3.0, -0.1], [-0.5, math.nan]]
    sel = select_pairs(refs, cands, selection="threshold", positive_threshold=0.2, negative_threshold=-1.0)
    assert sel.kept == [(0, [1])] and sel.counts["negative_cut_score"] == -1.0  # doc 2: -0.5 > -1; doc 1: ref
    # ROUGE: no reference score, every reference is positive-eligible; only the negative cut selects.
    rouge = select_pairs(None, cands, negative_ratio=0.67)
    assert rouge.kept == [(0, [1]), (1, [0])] and rouge.counts["positive_eligible"] == 3
    # Two negatives per document: distinct texts, never the reference's text.
    texts = [["bad", "bad"], ["the ref", "worse"], ["x", "y"]]
    many = select_pairs(
        refs, [[-2.0, -2.0], [-3.0, -1.0], [0.0, 0.0]], negative_ratio=1, positive_ratio=1,
        negatives_per_document=2, candidates=texts, references=["r0", "the ref", "r2"],
    )  # fmt: skip
    assert dict(many.kept) == {0: [0], 1: [1], 2: [0, 1]}
    assert lowest_candidates([None, None]) == [] and lowest_candidates([2.0, 1.0, 1.0]) == [1]
    with pytest.raises(ValueError, match="negative_threshold"):
        select_pairs(refs, cands, selection="threshold")


def test_on_policy_positives_take_the_best_candidate_that_beats_the_reference():
    from conseq.stages.partition import best_positives

    rows = [
        {"reference": "r0", "candidates": ["a", "b", "c"]},
        {"reference": "r1", "candidates": ["d", "e"]},
        {"reference": "r2", "candidates": ["f", "g"]},
        {"reference": "r3", "candidates": ["h"]},
    ]
    refs = [-1.0, 0.5, None, 0.2]
    cands = [[-2.0, -0.5, None], [0.1, 0.5], [-3.0, None], [0.9]]
    scores, texts = best_positives(rows, refs, cands)
    # doc 0: "b" beats the reference; doc 1: a tie keeps the reference; doc 2: unscored reference, best candidate;
    # doc 3: the only candidate wins, and is then also the worst: no pair (checked in the stage)
    assert scores == [-0.5, 0.5, -3.0, 0.9] and texts == ["b", "r1", "f", "h"]
    sel = select_pairs(scores, cands, positive_ratio=1, negative_ratio=1, references=texts)
    assert dict(sel.kept) == {0: [0], 1: [0], 2: [0], 3: [0]}
