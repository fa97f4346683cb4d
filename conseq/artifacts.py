"""The content-addressed artifact cache: the only module that knows where things live on disk.

An artifact is ``<root>/cache/<kind>/<key>/`` holding its files plus ``spec.json`` (what produced it),
``metrics.json`` and ``_SUCCESS``. The key is a hash of the spec: only the fields that change the content,
including tokenizer and decoding settings and the keys of upstream artifacts. Work in progress lives in
``<key>.partial/`` (kept across crashes, so training checkpoints and generation shards survive a kill) and is
renamed into place in one step when finished, so a reader never sees a half-written artifact.
"""

from __future__ import annotations

import contextlib
import functools
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


def model_identity(name_or_path: str) -> str:
    """What a model reference stands for in artifact keys: a hub id as itself; a local folder (or file) by its
    content, so that new weights written into the same folder never reuse the old folder's downstream
    artifacts. The content hash covers every file at the folder's top level (config, tokenizer, weights;
    save_pretrained writes no subfolders that load), and is memoised per file by size and modification time."""
    path = Path(name_or_path)
    if not path.exists():
        return name_or_path
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and p.name != SUCCESS)
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}\0{_file_sha256(str(file.resolve()), stat.st_size, stat.st_mtime_ns)}\0".encode())
    return f"sha256:{digest.hexdigest()[:32]}"


@functools.lru_cache(maxsize=512)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime only key the memo
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def open_artifact(path: str | os.PathLike) -> Artifact:
    """The finished artifact in the folder ``<root>/cache/<kind>/<key>/`` (its kind, key and spec read from it)."""
    path = Path(path).expanduser().resolve()
    if not (path / SUCCESS).is_file() or not (path / "spec.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a finished artifact (it needs {SUCCESS} and spec.json): give a folder "
            '<root>/cache/<kind>/<key> that a stage printed as its "artifact"'
        )
    return Artifact(kind=path.parent.name, key=path.name, spec=read_json(path / "spec.json"), path=path)


def cached(of: Artifact, kind: str, key: str) -> Artifact:
    """The artifact ``kind``/``key`` in the cache that holds ``of`` (an upstream one its spec names by key);
    ``done`` says whether it is built."""
    path = of.path.parents[2] / "cache" / kind / key
    spec = read_json(path / "spec.json") if (path / "spec.json").is_file() else {}
    return Artifact(kind=kind, key=key, spec=spec, path=path)


def run_dir(root: str | os.PathLike, name: str) -> Path:
    """Where logs and trackers of a run go (not content-addressed: a run is an event, not a product)."""
    path = Path(root) / "runs" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves a truncated file."""
    write_text(path, json.dumps(_plain(obj), indent=2, sort_keys=True, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (``<name>.tmp`` + rename): a crash or a full disk never leaves a truncated file
    under its name, and a failed write names the file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _naming(e, path) from e


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` with the file it was writing (a failed write() names none, e.g. on a full disk)."""
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, str(path))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _naming(e, path) from e


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
