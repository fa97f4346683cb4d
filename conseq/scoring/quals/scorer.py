"""The QUALS scorer: QA pairs generated from a summary, scored against the summary and against the document.

Per summary (Nan et al., ACL 2021; the original's steps in reference/quals_conseq.md §3):
1. diverse beam search with the QAGen model on the summary (60 groups of width 1, strength 0.5, 8-60 tokens);
2. parse "question <sep> answer" and keep the pairs the original's filter keeps (``pairs.filter_pairs``);
3. LL_src = per-token mean log p(question <sep> answer </s> | document), by teacher forcing;
4. LL_sum = the same given the summary (``summary_ll="rescore"``, the default; read off the search, which
   already computed these log-probabilities), or the original's beam score including the diversity penalty
   divided by the length (``summary_ll="beam"``);
5. QUALS = mean over pairs of (LL_src - LL_sum) (``aggregate="min"``: the minimum); no pair -> None.

``span="answer"`` (not the paper's) compares the answer alone: LL is the summed log-probability of the answer's
tokens and EOS after the question, so a pair whose answer the document does not support is not averaged with
its question's tokens, which both sides predict alike.

Work is shared wherever the result cannot change: identical summaries are decoded once, identical documents
are encoded once (e.g. the 6 candidates of one document), and a document's pairs are scored against one
encoder pass.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from conseq.generation import diverse_beam_search
from conseq.modeling import SEP_TOKEN, load_model
from conseq.scoring.quals.likelihood import pair_log_likelihoods
from conseq.scoring.quals.pairs import QACandidate, filter_pairs, parse_conseq, parse_lmqg

log = logging.getLogger(__name__)

QA_FORMAT_FILE = "conseq_qagen.json"
# "qg": not a QAGen model but QAGS's question generator ("answer<sep>text" -> question, conseq.scoring.qags).
QA_FORMATS = ("conseq", "lmqg", "qg")
# What a pair's LL measures: "pair" (the paper) the mean log-probability of all its tokens (question, separator,
# answer, EOS); "answer" the summed log-probability of its answer tokens and EOS, after the question.
SPANS = ("pair", "answer")
# lmqg's end-to-end QAG models (e.g. lmqg/t5-base-squad-qag) expect this task prefix.
LMQG_INPUT_PREFIX = "generate question and answer: "


@dataclass
class QAFormat:
    """How a QAGen model writes QA pairs: ``conseq`` = "question<sep>answer" per sequence; ``lmqg`` =
    "question: q, answer: a | question: …" (several pairs per sequence), after ``input_prefix`` + text."""

    qa_format: str = "conseq"
    sep_token: str = SEP_TOKEN
    input_prefix: str = ""

    def __post_init__(self):
        if self.qa_format not in QA_FORMATS:
            raise ValueError(f"qa_format must be one of {QA_FORMATS}, got {self.qa_format!r}")


def save_qa_format(
    path: str | Path, qa_format: str = "conseq", *, sep_token: str = SEP_TOKEN, input_prefix: str = ""
) -> Path:
    """Write ``conseq_qagen.json`` into a QAGen model folder (the qagen stage calls this after saving)."""
    fmt = QAFormat(qa_format, sep_token, input_prefix)
    target = Path(path) / QA_FORMAT_FILE
    target.write_text(json.dumps(asdict(fmt), indent=2) + "\n")
    return target


def read_qa_format(path: str | Path) -> QAFormat | None:
    """The ``conseq_qagen.json`` of a QAGen folder (or hub repo), or None when it has none."""
    local = Path(path)
    text = None
    if local.is_dir():
        if (local / QA_FORMAT_FILE).is_file():
            text = (local / QA_FORMAT_FILE).read_text()
    else:
        from transformers.utils import cached_file

        try:
            found = cached_file(
                str(path),
                QA_FORMAT_FILE,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            found = None
        if found:
            text = Path(found).read_text()
    if text is None:
        return None
    try:
        return QAFormat(**json.loads(text))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}/{QA_FORMAT_FILE} is invalid: {err}") from err


def load_qa_format(path: str | Path, tokenizer=None) -> QAFormat:
    """Read ``conseq_qagen.json`` from a QAGen folder (or hub repo). Without the file, a tokenizer that has
    the ``<sep>`` token means the conseq format; anything else is an error asking for ``qa_format=``."""
    fmt = read_qa_format(path)
    if fmt is not None:
        return fmt
    if tokenizer is not None and SEP_TOKEN in tokenizer.get_vocab():
        return QAFormat("conseq")
    raise ValueError(
        f"{path} has no {QA_FORMAT_FILE} and its tokenizer has no {SEP_TOKEN} token, so the QA output format "
        "is unknown: pass qa_format='conseq' (question<sep>answer) or qa_format='lmqg' "
        "('question: …, answer: … | …', e.g. lmqg/t5-base-squad-qag)"
    )


@dataclass
class QAPair:
    """One scored QA pair. With ``token_logprobs=True`` the scorer also keeps the pair's tokens (question,
    separator, answer, EOS, as the QAGen model wrote them) and each token's log-probability given the source
    (``lp_source``) and given the summary (``lp_summary``); ``ll_source`` / ``ll_summary`` are their means (for
    ``summary_ll="beam"``, ``ll_summary`` is the penalised beam score and ``lp_summary`` the model's own
    log-probabilities without the penalty)."""

    question: str
    answer: str
    ll_source: float
    ll_summary: float
    tokens: list[str] | None = None
    lp_source: list[float] | None = None
    lp_summary: list[float] | None = None

    def as_dict(self) -> dict:
        """The output row of the pair (conseq.score): the per-token fields only when they were kept."""
        row = asdict(self)
        if self.tokens is None:
            for name in ("tokens", "lp_source", "lp_summary"):
                del row[name]
        return row


@dataclass
class QualsResult:
    quals: float | None
    qa_pairs: list[QAPair]


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (isinstance(err, RuntimeError) and "out of memory" in str(err))


class QualsScorer:
    """QUALS with one QAGen model. ``QualsScorer.from_pretrained(path)`` loads it; ``QualsScorer(model,
    tokenizer)`` wraps a model already in memory (used where it lives unless ``device``/``dtype`` are given,
    which move/cast it in place; its train/eval mode is restored after scoring). Summaries longer than
    ``max_summary_length`` tokens and documents longer than ``max_source_length`` are truncated (keeping
    EOS) for the model; the answer filter always reads the full summary text. ``token_logprobs=True`` keeps each
    pair's tokens and per-token log-probabilities (``QAPair``), for inspection; the scores do not change.

    Decoding defaults are the original's: 60 groups of width 1, diversity strength 0.5, 8-60 tokens, up to
    ``max_qas`` = 10 pairs kept (checked between round-robin rounds, so more may be kept). ``batch_size``
    summaries are decoded together (x ``num_groups`` decoder rows); likelihood forwards hold at most
    ``max_rows`` decoder rows. A batch that runs out of memory is split in halves and retried.
    ``self.stats`` counts, over all calls, the scored rows' truncated documents and summaries, null scores,
    generated and kept pairs, and out-of-memory splits.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        qa_format: str | QAFormat | None = None,
        input_prefix: str | None = None,
        num_groups: int = 60,
        diversity_penalty: float = 0.5,
        min_new_tokens: int = 8,
        max_new_tokens: int = 60,
        max_qas: int = 10,
        summary_ll: str = "rescore",
        aggregate: str = "mean",
        span: str = "pair",
        max_source_length: int = 1024,
        max_summary_length: int = 256,
        batch_size: int = 8,
        max_rows: int = 256,
        token_logprobs: bool = False,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        if summary_ll not in ("rescore", "beam"):
            raise ValueError(f"summary_ll must be 'rescore' or 'beam', got {summary_ll!r}")
        if aggregate not in ("mean", "min"):
            raise ValueError(f"aggregate must be 'mean' or 'min', got {aggregate!r}")
        if span not in SPANS:
            raise ValueError(f"span must be one of {SPANS}, got {span!r}")
        if qa_format is None:
            if SEP_TOKEN not in tokenizer.get_vocab():
                raise ValueError(f"the tokenizer has no {SEP_TOKEN} token: pass qa_format='conseq' or 'lmqg'")
            fmt = QAFormat("conseq")
        elif isinstance(qa_format, str):
            fmt = QAFormat(qa_format, input_prefix=LMQG_INPUT_PREFIX if qa_format == "lmqg" else "")
        else:
            fmt = qa_format
        if input_prefix is not None:
            fmt = QAFormat(fmt.qa_format, fmt.sep_token, input_prefix)
        if fmt.qa_format == "qg":
            raise ValueError("this is QAGS's question generator (qa_format 'qg'), not a QAGen model for QUALS")
        if fmt.qa_format == "lmqg" and summary_ll == "beam":
            raise ValueError("summary_ll='beam' needs one QA pair per sequence; the lmqg format has several")
        if span == "answer" and (fmt.qa_format != "conseq" or summary_ll != "rescore"):
            raise ValueError("span='answer' needs the conseq QA format (question<sep>answer) and summary_ll='rescore'")
        self.qa_format = fmt
        self.sep_id = None
        if fmt.qa_format == "conseq":
            if fmt.sep_token not in tokenizer.get_vocab():
                raise ValueError(f"qa_format 'conseq' needs the separator {fmt.sep_token!r} in the tokenizer")
            self.sep_id = tokenizer.convert_tokens_to_ids(fmt.sep_token)

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        self.model, self.tokenizer = model, tokenizer
        self.decoding = dict(
            num_groups=num_groups,
            diversity_penalty=diversity_penalty,
            min_new_tokens=min_new_tokens,
            max_new_tokens=max_new_tokens,
        )
        self.max_qas, self.summary_ll, self.aggregate, self.span = max_qas, summary_ll, aggregate, span
        self.token_logprobs = token_logprobs
        # A model's position table bounds what it can read (the tiny QAGen has 512 positions, bart-large 1024):
        # longer limits are cut to it, so long documents are truncated (and counted), never an index error.
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions and max(max_source_length, max_summary_length) > positions:
            log.info("QAGen reads at most %d tokens: source/summary limits cut to it", positions)
            max_source_length = min(max_source_length, positions)
            max_summary_length = min(max_summary_length, positions)
        self.max_source_length, self.max_summary_length = max_source_length, max_summary_length
        self.batch_size, self.max_rows = batch_size, max_rows
        self.pad_id = tokenizer.pad_token_id
        self.stats: Counter = Counter(
            truncated_sources=0,
            truncated_summaries=0,
            null_scores=0,
            pairs_generated=0,
            pairs_kept=0,
            oom_splits=0,
        )
        self._oom_logged = False

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        qa_format: str | None = None,
        input_prefix: str | None = None,
        num_groups: int = 60,
        diversity_penalty: float = 0.5,
        min_new_tokens: int = 8,
        max_new_tokens: int = 60,
        max_qas: int = 10,
        summary_ll: str = "rescore",
        aggregate: str = "mean",
        span: str = "pair",
        max_source_length: int = 1024,
        max_summary_length: int = 256,
        batch_size: int = 8,
        max_rows: int = 256,
        token_logprobs: bool = False,
        dtype: str | torch.dtype | None = None,
    ) -> QualsScorer:
        """Load a QAGen model (``save_pretrained`` folder or hub id) and its QA format (``conseq_qagen.json``;
        without it, ``<sep>`` in the tokenizer means "conseq", otherwise pass ``qa_format``). ``device``
        defaults to cuda when available; ``dtype`` (e.g. "bfloat16" on GPU) casts the weights."""
        model, tokenizer = load_model(name_or_path)
        fmt = load_qa_format(name_or_path, tokenizer) if qa_format is None else read_qa_format(name_or_path)
        if qa_format is not None and (fmt is None or fmt.qa_format != qa_format):
            fmt = qa_format  # an explicit format that the folder does not describe: the format's defaults
        return cls(
            model,
            tokenizer,
            qa_format=fmt,
            input_prefix=input_prefix,
            num_groups=num_groups,
            diversity_penalty=diversity_penalty,
            min_new_tokens=min_new_tokens,
            max_new_tokens=max_new_tokens,
            max_qas=max_qas,
            summary_ll=summary_ll,
            aggregate=aggregate,
            span=span,
            max_source_length=max_source_length,
            max_summary_length=max_summary_length,
            batch_size=batch_size,
            max_rows=max_rows,
            token_logprobs=token_logprobs,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
            dtype=dtype,
        )

    # ---------------------------------------------------------------------------------------------- public

    def score(
        self,
        documents: list[str],
        summaries: list[str],
        *,
        return_qa_pairs: bool = True,
        progress: bool = False,
    ) -> list[QualsResult]:
        """QUALS of each (document, summary) pair, in input order; ``quals`` is None when no pair survives."""
        if len(documents) != len(summaries):
            raise ValueError(f"{len(documents)} documents but {len(summaries)} summaries")
        for field, texts in (("documents", documents), ("summaries", summaries)):
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"{field}[{i}] is {type(text).__name__}, expected str")
        was_training = self.model.training
        self.model.eval()
        try:
            return self._score(documents, summaries, return_qa_pairs, progress)
        finally:
            self.model.train(was_training)

    # --------------------------------------------------------------------------------------------- helpers

    def _encode(self, texts: list[str], max_length: int) -> tuple[list[list[int]], list[bool]]:
        if not texts:
            return [], []
        prefix = self.qa_format.input_prefix
        ids = self.tokenizer([prefix + t for t in texts], truncation=False, verbose=False)["input_ids"]
        eos = self.tokenizer.eos_token_id
        out, truncated = [], []
        for seq in ids:
            truncated.append(len(seq) > max_length)
            if len(seq) > max_length:  # keep the closing EOS, like the original's source truncation
                seq = [*seq[: max_length - 1], eos] if seq[-1] == eos else seq[:max_length]
            out.append(seq)
        return out, truncated

    def _score(self, documents, summaries, return_qa_pairs, progress) -> list[QualsResult]:
        unique_sums = list(dict.fromkeys(summaries))
        unique_docs = list(dict.fromkeys(documents))
        sum_ids, sum_trunc = self._encode(unique_sums, self.max_summary_length)
        doc_ids, doc_trunc = self._encode(unique_docs, self.max_source_length)

        # 1-2. generate, parse and filter QA pairs per distinct summary
        candidates = self._generate(sum_ids, progress)
        kept = [filter_pairs(s, c, self.max_qas) for s, c in zip(unique_sums, candidates, strict=True)]

        # 3. LL given the summary. The search already computed the model's log-probability of every token it
        # chose, given this summary: teacher forcing the same ids would only repeat it (to float rounding;
        # ~7% of the scorer's time). Pairs whose ids were re-tokenized (lmqg) are teacher-forced.
        # span="answer" reads the answer's tokens, so it needs every token's log-probability on both sides.
        per_token = self.token_logprobs or self.span == "answer"
        redo = [[c.token_ids for c in k] if any(c.model_ll is None for c in k) else [] for k in kept]
        forced = self._log_likelihoods(sum_ids, redo, per_token) if self.summary_ll == "rescore" or per_token else None
        if self.summary_ll == "rescore":
            ll_sum = [[v[0] for v in f] if per_token else f for f in forced]
            ll_sum = [f if r else [c.model_ll for c in k] for k, r, f in zip(kept, redo, ll_sum, strict=True)]
        else:
            ll_sum = [[c.score_sum / c.length for c in k] for k in kept]
        if per_token:  # log p of each token given the summary: the search's own, or teacher-forced ones (lmqg)
            lp_sum = [[v[1] for v in f] if r else [c.token_logprobs for c in k] for k, r, f in zip(kept, redo, forced)]

        # 4. LL given the document: each distinct document once, each distinct target once per document
        sum_index = {s: i for i, s in enumerate(unique_sums)}
        doc_index = {d: i for i, d in enumerate(unique_docs)}
        doc_targets: list[dict[tuple[int, ...], int]] = [{} for _ in unique_docs]
        for doc, summary in zip(documents, summaries, strict=True):
            targets = doc_targets[doc_index[doc]]
            for cand in kept[sum_index[summary]]:
                targets.setdefault(tuple(cand.token_ids), len(targets))
        ll_src = self._log_likelihoods(doc_ids, [[list(t) for t in targets] for targets in doc_targets], per_token)
        if per_token:
            lp_src = [[v[1] for v in values] for values in ll_src]
            ll_src = [[v[0] for v in values] for values in ll_src]

        # 5. aggregate per input row
        results = []
        for doc, summary in zip(documents, summaries, strict=True):
            d, s = doc_index[doc], sum_index[summary]
            pairs = [
                QAPair(c.question, c.answer, ll_src[d][doc_targets[d][tuple(c.token_ids)]], ll_sum[s][j])
                for j, c in enumerate(kept[s])
            ]
            if self.span == "answer":
                for j, (c, pair) in enumerate(zip(kept[s], pairs, strict=True)):
                    # The scored tokens end with the answer and EOS (a forced BOS in front is not scored).
                    n = len(c.token_ids) - c.token_ids.index(self.sep_id) - 1
                    pair.ll_source = sum(lp_src[d][doc_targets[d][tuple(c.token_ids)]][-n:])
                    pair.ll_summary = sum(lp_sum[s][j][-n:])
            if self.token_logprobs and return_qa_pairs:
                for j, (c, pair) in enumerate(zip(kept[s], pairs, strict=True)):
                    pair.tokens = self._tokens(c.token_ids)
                    pair.lp_source = lp_src[d][doc_targets[d][tuple(c.token_ids)]]
                    pair.lp_summary = lp_sum[s][j]
            diffs = [p.ll_source - p.ll_summary for p in pairs]
            quals = None
            if diffs:
                quals = sum(diffs) / len(diffs) if self.aggregate == "mean" else min(diffs)
            results.append(QualsResult(quals, pairs if return_qa_pairs else []))
            self.stats["truncated_sources"] += doc_trunc[d]
            self.stats["truncated_summaries"] += sum_trunc[s]
            self.stats["pairs_generated"] += len(candidates[s])
            self.stats["pairs_kept"] += len(pairs)
            self.stats["null_scores"] += quals is None
        return results

    def _generate(self, sum_ids: list[list[int]], progress: bool) -> list[list[QACandidate]]:
        order = sorted(range(len(sum_ids)), key=lambda i: -len(sum_ids[i]))
        out: list[list[QACandidate]] = [[] for _ in sum_ids]
        with tqdm(total=len(order), desc="QUALS: QA generation", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                for i, cands in zip(batch, self._on_oom_split(self._generate_batch, [sum_ids[i] for i in batch])):
                    out[i] = cands
                bar.update(len(batch))
        return out

    def _generate_batch(self, batch: list[list[int]]) -> list[list[QACandidate]]:
        device = self.model.device
        width = max(len(s) for s in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention_mask[row, : len(seq)] = 1
        res = diverse_beam_search(self.model, input_ids.to(device), attention_mask.to(device), **self.decoding)
        offset = 1 if self.model.generation_config.forced_bos_token_id is not None else 0
        sequences, scores, lengths = res.sequences.cpu(), res.penalized_scores.cpu(), res.lengths.cpu()
        model_lls = (res.token_logprobs.sum(-1).cpu() / res.lengths.clamp(min=1).cpu()).tolist()
        token_lps = res.token_logprobs.cpu() if self.token_logprobs or self.span == "answer" else None
        out = []
        for row in range(len(batch)):
            cands = []
            for g in range(sequences.shape[1]):
                length = int(lengths[row, g])
                ids = sequences[row, g, : offset + length].tolist()
                found = self._parse(ids, float(scores[row, g]), length, model_lls[row][g])
                if token_lps is not None and found and found[0].model_ll is not None:
                    found[0].token_logprobs = token_lps[row, g, offset : offset + length].tolist()
                cands.extend(found)
            out.append(cands)
        return out

    def _tokens(self, ids: list[int]) -> list[str]:
        """The scored tokens of a QA target as text pieces (a leading forced BOS is not scored)."""
        forced_bos = self.model.generation_config.forced_bos_token_id
        if forced_bos is not None and ids[:1] == [forced_bos]:
            ids = ids[1:]
        return [self.tokenizer.decode([i]) for i in ids]

    def _parse(self, ids: list[int], score_sum: float, length: int, model_ll: float | None = None) -> list[QACandidate]:
        if self.qa_format.qa_format == "conseq":
            parsed = parse_conseq(ids, self.tokenizer, self.sep_id)
            return [] if parsed is None else [QACandidate(*parsed, ids, score_sum, length, model_ll)]
        # lmqg (a conseq variant, to be reported separately from the paper's QUALS): one sequence holds
        # several pairs; each is scored as the text "question: q, answer: a" re-tokenized as a decoder
        # target, and inherits the sequence's search score for the filter's ordering.
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return [
            QACandidate(
                q,
                a,
                self.tokenizer(text_target=f"question: {q}, answer: {a}")["input_ids"],
                score_sum,
                length,
            )
            for q, a in parse_lmqg(text)
        ]

    def _log_likelihoods(self, sources: list[list[int]], targets: list[list[list[int]]], per_token: bool = False):
        """Mean log-likelihoods per target (with ``per_token``: (mean, per-token list) pairs)."""

        def run(jobs):
            return pair_log_likelihoods(
                self.model,
                [sources[i] for i, _ in jobs],
                [t for _, t in jobs],
                pad_token_id=self.pad_id,
                max_rows=self.max_rows,
                per_token=per_token,
            )

        # Chunks of <= max_rows target rows (longest sources first), so that an out-of-memory retry redoes
        # one chunk, not the whole call.
        jobs = sorted(((i, t) for i, t in enumerate(targets) if t), key=lambda job: -len(sources[job[0]]))
        chunks, rows = [], self.max_rows
        for job in jobs:
            if rows + len(job[1]) > self.max_rows:
                chunks.append([])
                rows = 0
            chunks[-1].append(job)
            rows += len(job[1])
        results: list[list] = [[] for _ in targets]
        for chunk in chunks:
            for (i, _), values in zip(chunk, self._on_oom_split(run, chunk, _split_job), strict=True):
                results[i] = values
        return results

    def _on_oom_split(self, fn, items: list, split_single=None) -> list:
        """``fn(items)``; on out-of-memory, retry on halves (recursively). A single item is split by
        ``split_single`` (e.g. a document's targets in halves) when given; otherwise its OOM is raised."""
        try:
            return fn(items)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            if len(items) == 1 and (split_single is None or split_single(items[0]) is None):
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not self._oom_logged:
            log.warning("out of memory on a batch of %d; splitting batches in halves and retrying", len(items))
            self._oom_logged = True
        self.stats["oom_splits"] += 1
        if len(items) == 1:
            left, right = split_single(items[0])
            return [self._on_oom_split(fn, [left], split_single)[0] + self._on_oom_split(fn, [right], split_single)[0]]
        mid = len(items) // 2
        return self._on_oom_split(fn, items[:mid], split_single) + self._on_oom_split(fn, items[mid:], split_single)


def _split_job(job):
    """Split one (source index, targets) likelihood job into two, or None when it holds a single target."""
    index, targets = job
    if len(targets) < 2:
        return None
    mid = len(targets) // 2
    return (index, targets[:mid]), (index, targets[mid:])
