"""``python -m conseq.report``: the inspection report of an artifact, and the human study (conseq/report/__init__.py
and human_eval.py say what each writes). Arguments are ``key=value`` (lists as ``models=[mle,conseq]``) beside
one optional target path; the last stdout line is a JSON summary."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("conseq.report")
USAGE = """usage:
  python -m conseq.report <artifact dir | scored .jsonl> [out=report.html] [evidence=20] [documents=100]
                          [side_by_side=20] [rows=500] [qagen=<dir>] [device=cpu]
  python -m conseq.report human_eval=<evaluate artifact> models=[mle,conseq] [n=100] [seed=0] [out=human_eval]
  python -m conseq.report human_eval_results=<filled sheet.csv> [key=<key_PRIVATE.json>] [out=<dir>]"""
INTEGERS = {"evidence", "documents", "side_by_side", "rows", "n", "seed"}


def parse(argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """(target path or None, {key: value}); ``models=[a,b]`` becomes a list, counts become ints."""
    target, options = None, {}
    for arg in argv:
        if "=" not in arg:
            if target is not None:
                raise ValueError(f"two targets ({target}, {arg}): give one artifact folder or file")
            target = arg
            continue
        key, value = arg.split("=", 1)
        if key == "models":
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        elif key in INTEGERS:
            try:
                value = int(value)
            except ValueError as err:
                raise ValueError(f"{key}={value}: expected an integer") from err
        options[key] = value
    return target, options


def main(argv: list[str]) -> dict[str, Any]:
    target, options = parse(argv)
    if "human_eval" in options:
        from conseq.artifacts import open_artifact
        from conseq.report.human_eval import write_sheet

        evaluation = open_artifact(options.pop("human_eval"))
        models = options.pop("models", None)
        if not models:
            raise ValueError("human_eval= needs models=[<baseline>,<system>], e.g. models=[mle,conseq]")
        out = Path(options.pop("out", "human_eval"))
        n, seed = options.pop("n", 100), options.pop("seed", 0)
        _no_more(options, target)
        return write_sheet(evaluation, models, n, out, seed=seed)
    if "human_eval_results" in options:
        from conseq.report.human_eval import KEY, write_results

        sheet = Path(options.pop("human_eval_results"))
        key = Path(options.pop("key", sheet.with_name(KEY)))
        out = Path(options.pop("out", sheet.parent))
        _no_more(options, target)
        return write_results(sheet, key, out)
    if target is None:
        raise ValueError("give an artifact folder or a scored .jsonl file to report on")
    from conseq.report import write_report

    return write_report(target, options.pop("out", "report.html"), **options)


def _no_more(options: dict[str, Any], target: str | None) -> None:
    if options or target:
        extra = [*options, *([target] if target else [])]
        raise ValueError(f"{', '.join(extra)}: not an option of this command")


if __name__ == "__main__":
    # Not conseq.runtime.setup_logging: importing it loads torch (~5 s), which only a score report's evidence needs.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    from conseq.errors import user_errors

    # a bad argument, input file or full disk: one line "conseq: error: …" and exit status 2 (conseq/errors.py)
    summary = user_errors(main, also=(ValueError,))(sys.argv[1:])
    print(json.dumps(summary), flush=True)
