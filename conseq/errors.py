"""What a user can fix is said in one line: ``conseq: error: <file> line <n> field <f>: <what>`` on stderr, exit
status 2, no traceback (``HYDRA_FULL_ERROR=1`` prints it too, above the line).

User errors are: bad input data (``BadInputError``, raised by conseq/data/loading.py and the report's readers, with
the file, row and field it names), a knob with a bad value (a ``ValueError`` whose message starts with the knob,
``stages.qa.eval_rows=0: …``), a missing file or model (``FileNotFoundError``), and what the file system refuses
(permissions, a full disk, a file where a folder belongs). Anything else is a bug and keeps its traceback.

Every entry point wraps its main function in ``user_errors``: ``python -m conseq.train`` and ``python -m
conseq.score`` inside ``@hydra.main`` (Hydra would otherwise print "Error executing job …" and a traceback, and
exit 1; a ``SystemExit`` passes through it), and ``python -m conseq.report``.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_STATUS = 2
# What the file system refuses for reasons the user controls: permissions, space, quota, file size, a read-only
# mount, a file where a folder belongs (or the reverse: ENOTDIR, EISDIR, EEXIST), a missing path.
USER_ERRNOS = {
    errno.ENOENT,
    errno.EEXIST,
    errno.EACCES,
    errno.EPERM,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
}
# A knob's own message: "stages.qa.eval_rows=0: …", "data=jsonl needs …", "stages.pretrain: …".
_KNOB = re.compile(r"^[A-Za-z_][\w.@]*(=|: )")


class BadInputError(ValueError):
    """Unusable input data. ``str()`` is ``<file> <where> field <f>: <what>`` with the parts that apply; ``where``
    is ``line N`` (1-based) in text files, ``row index i`` in arrays, parquet and hub datasets. A single message
    (``BadInputError("<file>: not a file")``) is the whole text."""

    def __init__(self, what: str, *, file: str | None = None, where: str | None = None, field: str | None = None):
        self.what, self.file, self.where, self.field = what, file, where, field
        super().__init__(what)

    def __str__(self) -> str:
        parts = [str(p) for p in (self.file, self.where) if p] + ([f"field {self.field}"] if self.field else [])
        return f"{' '.join(parts)}: {self.what}" if parts else self.what


def user_message(err: BaseException) -> str | None:
    """The one-line message of a user error; None for anything else (a bug)."""
    if isinstance(err, BadInputError):
        return str(err)
    if isinstance(err, OSError) and (err.errno in USER_ERRNOS or isinstance(err, FileNotFoundError)):
        if err.errno is None:  # raised with a message of ours: FileNotFoundError("the MLE model … is not built")
            return str(err)
        where = f"{err.filename}: " if err.filename is not None else ""
        return f"{where}{err.strerror or os.strerror(err.errno)}"
    if type(err) is ValueError and _KNOB.match(str(err)):
        return str(err)
    return None


def fail(message: str) -> NoReturn:
    """Print the one line and exit with status 2."""
    # A progress bar the error interrupted ends its line first (else the message would start mid-line).
    for bar in list(getattr(getattr(sys.modules.get("tqdm.std"), "tqdm", None), "_instances", ())):
        bar.close()
    print(f"conseq: error: {' '.join(message.splitlines())}", file=sys.stderr, flush=True)
    sys.exit(EXIT_STATUS)


def user_errors(main: Callable[..., Any], *, also: tuple[type[BaseException], ...] = ()) -> Callable[..., Any]:
    """``main`` with user errors (and those of the types ``also``) turned into the one line and exit status 2. A
    ``SystemExit`` carrying a message (a stage's "build this first") gets the same form."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                fail(exit_.code)
            raise
        except Exception as err:
            message = user_message(err) or (str(err) if isinstance(err, also) else None)
            if message is None:
                raise
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                traceback.print_exc()
            fail(message)

    return wrapped
