"""The results file of a sweep: append-only JSONL, its durable writer and its reader.

Results file
------------
One strict-JSON object per line (JSONL), each ending in ``"\\n"``::

    {"spec_id": "3f1c...", "spec_type": "experiments.nmf.NMFRunSpec", "spec": {...},
     "status": "ok" | "error", "result": {...} | null, "error": {...} | null,
     "wall_time_s": 1.23, "finished_at": "2025-01-01T12:00:00.000+00:00", "host": "node7"}

``error`` is ``{"type", "message", "traceback"}`` for a run whose function raised, or
``{"type": "WorkerDied", "message": "worker process died (exit code ...) ...", "traceback": ""}``
for a run that killed the process running it.
``spec_id`` (see :func:`spec_id`) names the run, so rerunning a sweep skips every spec that
already has an ``ok`` line: an interrupted sweep (Ctrl-C, crash, killed job) resumes where it
stopped, and nothing is lost or duplicated. When a spec has several lines (a failed attempt,
then a successful retry) the last one wins.

Durability. Only the parent process writes. Each record is serialised to one line first and
then written with a single ``os.write`` to a file opened with ``O_APPEND``, followed by
``os.fsync``. A line is *committed* once its trailing newline is on disk. A crash in the middle
of a write can leave an unterminated last line: :func:`load_results` ignores it (with a
warning) and :func:`run_sweep` truncates it before appending, so the run it belonged to is
simply run again. Lines are never rewritten otherwise. While a sweep runs it holds an advisory
``flock`` on its file, so a second sweep writing the same file at the same time fails fast.

Whole files (summaries, tables) are replaced atomically with :func:`write_text_atomic` and
:func:`write_json_atomic`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from experiments.runner.specs import to_jsonable

try:  # POSIX only; elsewhere sweeps simply run without the advisory lock.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

Record = dict[str, Any]
"""One line of a results file (see the module docstring for its keys)."""


_STATUSES = ("ok", "error")


def _drop_torn_tail(fd: int, path: Path) -> None:
    """Truncate an unterminated last line (an interrupted write) so appends start clean."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep, end = 0, size
    while end > 0:
        start = max(0, end - (1 << 16))
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    warnings.warn(
        f"{path}: dropping an incomplete last line ({size - keep} bytes left by an interrupted "
        "write); its run will be run again",
        RuntimeWarning,
        stacklevel=4,  # the caller of run_sweep
    )
    os.ftruncate(fd, keep)
    os.fsync(fd)


class _ResultsWriter:
    """Append-only, locked writer of one results file (used by :func:`run_sweep` only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _ResultsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RuntimeError(
                        f"{self.path} is being written by another sweep; wait for it to finish"
                    ) from None
                except OSError:  # a filesystem without flock support: go on unlocked
                    pass
            _drop_torn_tail(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def append(self, record: Record) -> None:
        """Write ``record`` as one line with a single write, then fsync."""
        line = json.dumps(record, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
        data = memoryview((line + "\n").encode("ascii"))
        while data:  # one write in practice; loop only on a short write (e.g. disk full)
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)  # also releases the lock


def _read_latest(path: Path, *, warn: bool = True) -> dict[str, Record]:
    """Latest record per spec_id, keyed in order of first appearance.

    An incomplete last line is ignored, with a warning if ``warn``.
    """
    latest: dict[str, Record] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                if not warn:
                    break
                warnings.warn(
                    f"{path}:{lineno}: ignoring an incomplete last line ({len(line)} bytes, "
                    "left by an interrupted write)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a valid JSON line ({exc})") from None
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("spec_id"), str)
                or record.get("status") not in _STATUSES
            ):
                raise ValueError(
                    f"{path}:{lineno}: not a result record (needs 'spec_id' and a 'status' "
                    f"in {_STATUSES})"
                )
            latest[record["spec_id"]] = record
    return latest


def load_results(
    results_path: str | os.PathLike[str], *, status: str | None = "ok"
) -> list[Record]:
    """Read a results file: the latest record of every spec.

    Parameters
    ----------
    results_path : str or path-like
        A JSONL file written by :func:`run_sweep`.
    status : {"ok", "error"} or None, default "ok"
        Keep only specs whose latest record has this status; ``None`` keeps all.

    Returns
    -------
    list of dict
        One record per ``spec_id`` (the last line written for it), in order of the spec's first
        appearance in the file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If ``status`` is invalid, or a complete line is not a valid record (something other
        than an interrupted sweep wrote the file; the message gives the line number).

    Warns
    -----
    RuntimeWarning
        When the last line is incomplete (a crash mid-write); that line is ignored.
    """
    if status is not None and status not in _STATUSES:
        raise ValueError(f"status must be 'ok', 'error' or None, got {status!r}")
    records = _read_latest(Path(results_path)).values()
    return [r for r in records if status is None or r["status"] == status]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file so that readers see the old or the new content, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """:func:`to_jsonable` + :func:`write_text_atomic`: strict JSON, non-finite floats as strings."""
    write_text_atomic(path, json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")
