"""The content-addressed artifact cache: the only module that knows where things live on disk.

An artifact is ``<root>/cache/<kind>/<key>/`` holding its files plus ``spec.json`` (what produced it),
``metrics.json`` and ``_SUCCESS``. The key is a hash of the spec: only the fields that change the content,
including tokenizer and decoding settings and the keys of upstream artifacts. Work in progress lives in
``<key>.partial/`` (kept across crashes, so training checkpoints and generation shards survive a kill) and is
renamed into place in one step when finished, so a reader never sees a half-written artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

SUCCESS = "_SUCCESS"
KEY_LENGTH = 16


def spec_key(spec: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``spec`` (sorted keys), truncated: same content ⇔ same key."""
    canonical = json.dumps(_plain(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass
class Artifact:
    kind: str
    key: str
    spec: dict[str, Any]
    path: Path

    @property
    def partial(self) -> Path:
        """Scratch folder for an unfinished build; survives a crash so the next run can resume from it."""
        return self.path.with_name(self.path.name + ".partial")

    @property
    def done(self) -> bool:
        return (self.path / SUCCESS).is_file()

    def metrics(self) -> dict[str, Any]:
        return read_json(self.path / "metrics.json") if self.done else {}

    def start(self, *, force: bool = False) -> Path:
        """Prepare the partial folder. ``force`` discards the finished artifact and any partial work."""
        if force:
            shutil.rmtree(self.path, ignore_errors=True)
            shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True, exist_ok=True)
        return self.partial

    def finish(self, metrics: dict[str, Any]) -> Path:
        """Write spec.json, metrics.json and _SUCCESS into the partial folder, then rename it into place."""
        write_json(self.partial / "spec.json", self.spec)
        write_json(self.partial / "metrics.json", metrics)
        (self.partial / SUCCESS).touch()
        if self.path.exists():  # a stale unfinished folder from an older layout; never a finished one here
            shutil.rmtree(self.path)
        os.replace(self.partial, self.path)
        return self.path


def artifact(root: str | os.PathLike, kind: str, spec: dict[str, Any]) -> Artifact:
    spec = _plain(spec)
    key = spec_key(spec)
    return Artifact(kind=kind, key=key, spec=spec, path=Path(root) / "cache" / kind / key)


def run_dir(root: str | os.PathLike, name: str) -> Path:
    """Where logs and trackers of a run go (not content-addressed: a run is an event, not a product)."""
    path = Path(root) / "runs" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves a truncated file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(obj), indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def item_store(root: str | os.PathLike, kind: str, spec: dict[str, Any]) -> Path:
    """The folder of a per-item cache shared by runs: ``<root>/cache/<kind>/<key>/`` with ``spec.json``.

    Unlike an Artifact it is never finished: runs append the items they compute to their own jsonl files in
    it, so a restarted or extended run computes only what is missing. Call it from one process at a time.
    """
    spec = _plain(spec)
    path = Path(root) / "cache" / kind / spec_key(spec)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "spec.json").is_file():
        write_json(path / "spec.json", spec)
    return path
