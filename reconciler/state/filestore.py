"""JSON-file state backend: ``renders.state.json`` plus a journal, a backup and a lock.

Files beside the state (for ``state/renders.state.json``):
  ``.journal``  one JSON line per checkpoint, fsync'd; folded into the state by ``write``
  ``.backup``   the previous state, kept by every ``write``
  ``.lock``     the OS lock (filelock: flock/msvcrt), released by the kernel if we die
  ``.lock.info`` the holder's LockInfo, for the message a waiting process prints

A write is temp file → fsync → rename → fsync(dir): readers see the old or the new state,
never half of one. A state that cannot be parsed is reported and left untouched. A torn
last journal line (killed mid-append) was never acknowledged and is ignored; so are lines
whose serial the state already has (a write that died between its rename and removing the
journal); damage anywhere else is corruption.

Damage is reported with the file (and the line and column where JSON gives one), and a
hint that offers only what exists: the backup if it is there and reads as a state, the
version git has if the file is tracked and that version differs and reads as a state, and
always moving the file aside.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import uuid as uuidlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
import msgspec
from pydantic import ValidationError

from reconciler._gc import gc_paused
from reconciler.cache import Cache, digest
from reconciler.errors import (
    LockNotFoundError,
    StateCorruptError,
    StateError,
    StateLockedError,
    StateReadError,
    StateVersionError,
    StateWriteError,
)
from reconciler.state import check
from reconciler.state.index import (
    IndexBuilder,
    NotScannable,
    PlanState,
    byte_spans,
    from_payload,
    index_payload,
    scan,
    written_records,
    written_spans,
)
from reconciler.state.model import (
    FORMAT_VERSION,
    RECORD_ADAPTER,
    RECORDS_ADAPTER,
    ProductRecord,
    State,
    is_product_uuid,
)
from reconciler.state.store import LockInfo, StateStore


class FileStateStore:
    """State in one JSON file on a local disk (commit it to git, or not)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.info_path = self.path.with_name(self.path.name + ".lock.info")
        self._held: LockInfo | None = None

    # -- reading -------------------------------------------------------------------------
    def read(self) -> State:
        with gc_paused():
            state = self._read_file()
            for entry in self._journal_entries(state.lineage, state.serial):
                self._apply(state, entry)
        return state

    def read_for_plan(self) -> State | PlanState:
        """The state as ``build_plan`` reads it, without building every record: from the index
        the cache keeps for these exact bytes (reconciler.state.index); else, for a state laid out
        as ``write`` lays it out, checked whole by msgspec (reconciler.state.check) and indexed
        in the same pass (with no cache too, then kept nowhere); else read and validated whole as
        ``read`` does, in one pass that also makes the index. A journal (an interrupted apply) or
        a damaged state: ``read()``, and its errors."""
        cache = Cache.default("state-index")
        if self.journal_path.exists():
            return self.read()
        try:
            raw = _read_regular(self.path)
        except (OSError, _Damaged):
            return self.read()  # which says what is wrong
        if cache is None:  # no cache to keep an index in: still checked in C, not built in pydantic
            checked = _check_written(raw)
            return (
                self.read() if checked is None else PlanState(checked[0], checked[1], checked[2].records(raw))
            )
        content = digest(raw)
        hit = cache.get(self.location, content)
        if hit is not None:
            meta, payload = hit
            lineage, serial = meta.get("lineage"), meta.get("serial")
            records = from_payload(raw, payload, meta)
            if records is not None and type(lineage) is str and type(serial) is int:
                return PlanState(lineage, serial, records)
        checked = _check_written(raw)
        if checked is not None:
            lineage, serial, index = checked
            payload, extra = index.payload()
            cache.put(self.location, content, payload, lineage=lineage, serial=serial, **extra)
            return PlanState(lineage, serial, index.records(raw))
        # Laid out otherwise, or refused by the strict check (damage, or a value only pydantic's
        # lax validation accepts, such as "protect": 1): the models, as read() builds them.
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self.read()
        del raw
        with gc_paused():
            try:
                data = _checked(json.loads(text), self.location)
                products = data.get("products")
                found = written_spans(text, list(products)) if isinstance(products, dict) else None
                if found is None:  # laid out otherwise (by hand, another tool): decoded record by record
                    data, found = scan(text)
                    data = _checked(data, self.location)
                spans = byte_spans(text, found)  # the index slices the state's bytes
                del text  # the parsed records and their spans are all that is needed now (-139 MB at 10^5)
                state = _validate_consuming(data)
            except (ValueError, RecursionError, NotScannable, _Damaged, ValidationError):
                return self.read()  # which says what is wrong
            payload, extra = index_payload(state.products, spans)
        cache.put(self.location, content, payload, lineage=state.lineage, serial=state.serial, **extra)
        return state

    def journal_length(self) -> int:
        try:
            with self.journal_path.open("rb") as fh:
                return sum(1 for _ in fh)
        except FileNotFoundError:
            return 0

    def _read_file(self) -> State:
        try:
            return _load(lambda: _read_regular(self.path), self.location)
        except FileNotFoundError:
            # No state yet: a first run that died before its first full write left only a
            # journal, whose lineage is the state's; otherwise an empty lineage, fixed at the
            # first write, so a plan made now still matches when it is applied.
            return State(lineage=self._journal_lineage() or "")
        except IsADirectoryError as exc:
            raise StateError(
                f"state path {self.location} is a directory",
                hint="pass the state file itself, e.g. --state state/renders.state.json",
            ) from exc
        except PermissionError as exc:  # not damage: the file is fine, this user may not read it
            raise StateReadError(self.location, exc) from exc
        except OSError as exc:
            raise self._corrupt(f"cannot read it ({exc.strerror})") from exc
        except _Damaged as exc:
            raise self._corrupt(exc.problem) from exc.__cause__

    def _corrupt(self, problem: str) -> StateCorruptError:
        return StateCorruptError(self.location, problem, hint=self._recovery())

    def _recovery(self) -> str:
        """What the user can do, naming only what exists; each step, followed, gives a readable state."""
        steps = []
        backup = _readable(lambda: _read_regular(self.backup_path), str(self.backup_path))
        if backup is not None:
            steps.append(
                f"restore the previous state (serial {backup.serial}, before the last write) from its "
                f"backup: cp {_q(self.backup_path)} {_q(self.path)}"
            )
        committed = _git_version(self.path)
        if committed is not None:
            steps.append(
                f"restore the version in git (serial {committed.serial}): "
                f"git -C {_q(self.path.parent)} checkout -- {_q(self.path.name)}"
            )
        aside = [self.path] + ([self.journal_path] if self.journal_path.exists() else [])
        moves = " && ".join(f"mv {_q(p)} {_q(str(p) + '.damaged')}" for p in aside)
        steps.append(
            f"move it aside ({moves}): the next run starts from an empty state, and "
            "'reconciler import --all' records the renders the platform already holds without paying "
            "for them again"
        )
        return "the file was left untouched. To recover, " + "; or ".join(steps)

    def _journal_lineage(self) -> str | None:
        try:
            with self.journal_path.open("rb") as fh:
                first = fh.readline(1 << 20)
            return str(json.loads(first)["lineage"]) if first.endswith(b"\n") else None
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def _journal_entries(self, lineage: str, serial: int) -> Iterator[dict[str, Any]]:
        """The checkpoints after ``serial``, each checked; lines the state already has are skipped."""
        try:
            lines = _read_regular(self.journal_path).split(b"\n")
        except FileNotFoundError:
            return
        except _Damaged as exc:
            raise self._journal_damaged(0, exc.problem) from None
        except PermissionError as exc:
            raise StateReadError(str(self.journal_path), exc) from exc
        except OSError as exc:
            raise StateCorruptError(str(self.journal_path), f"cannot read it ({exc.strerror})") from exc
        complete = lines[:-1]  # a journal line is acknowledged only once its newline is on disk
        for number, line in enumerate(complete, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise self._journal_damaged(
                    number, f"is not valid JSON (column {exc.colno}: {exc.msg})"
                ) from exc
            except (ValueError, RecursionError) as exc:  # not UTF-8, a 5,000-digit number, nested 1,000 deep
                raise self._journal_damaged(number, "is not valid JSON") from exc
            if not (
                isinstance(entry, dict)
                and type(entry.get("serial")) is int
                and isinstance(entry.get("product"), str)
                and isinstance(entry.get("record"), (dict, type(None)))
            ):
                raise self._journal_damaged(number, "is not a checkpoint (needs serial, product and record)")
            if entry.get("lineage") != lineage:
                raise self._journal_damaged(
                    number, f"belongs to another state (lineage {_short(entry.get('lineage'))})"
                )
            if entry["serial"] <= serial:
                continue  # folded into the state by a write that died before removing the journal
            if entry["serial"] != serial + 1:
                raise self._journal_damaged(
                    number,
                    f"has serial {entry['serial']} where {serial + 1} is next: a checkpoint is missing",
                )
            if not is_product_uuid(entry["product"]):
                raise self._journal_damaged(
                    number, f"is not a checkpoint: {_short(entry['product'])} is not a product uuid"
                )
            serial = entry["serial"]
            entry["line"] = number
            yield entry

    def _journal_damaged(self, number: int, problem: str) -> StateCorruptError:
        aside = f"mv {_q(self.journal_path)} {_q(str(self.journal_path) + '.damaged')}"
        return StateCorruptError(
            str(self.journal_path),
            f"line {number} {problem}" if number else problem,
            hint=(
                f"the journal holds the checkpoints of an interrupted apply; the state file {self.location} "
                f"was not changed. Move the journal aside ({aside}) to start from the last complete state "
                "(renders it recorded as in flight will then be planned again)"
            ),
        )

    def _apply(self, state: State, entry: dict[str, Any]) -> None:
        record = entry["record"]
        if record is None:
            state.products.pop(entry["product"], None)
        else:
            try:
                state.products[entry["product"]] = RECORD_ADAPTER.validate_python(record)
            except ValidationError as exc:
                raise self._journal_damaged(
                    entry["line"], f"is an invalid record for {entry['product']}: {_validation_problem(exc)}"
                ) from exc
        state.serial = entry["serial"]

    # -- writing -------------------------------------------------------------------------
    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        self._require_lock()
        _require_uuids([product], self.location)
        _ensure_lineage(state)
        entry = {
            "serial": state.serial + 1,
            "lineage": state.lineage,
            "product": product,
            "record": None if record is None else record.model_dump(mode="json"),
        }
        line = (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        self._mkdir()
        _append(self.journal_path, line)  # durable first: the state in memory follows the disk
        state.serial += 1
        if record is None:
            state.products.pop(product, None)
        else:
            state.products[product] = record

    def write(self, state: State, *, bump: bool = True) -> None:
        """Atomic replace. ``bump=False`` only to fold a journal: content unchanged, serial kept.

        The new state is written to a temp file first, the one step that needs disk space; only
        then is the old state kept as ``.backup`` (a hard link: no space) and replaced. A disk
        that refuses any step raises StateWriteError with the state, backup and journal as they
        were, and no temp file left."""
        self._require_lock()
        _require_uuids(state.products, self.location)
        _ensure_lineage(state)
        before = state.serial
        if bump:
            state.serial += 1
        try:
            with gc_paused():
                data = state.to_json().encode()
            self._mkdir()
            tmp = _write_temp(self.path, data, self.location)
            try:
                if self.path.exists():
                    _keep_backup(self.path, self.backup_path)
                os.replace(tmp, self.path)
            except OSError as exc:
                raise StateWriteError(self.location, "write", exc) from exc
            finally:
                tmp.unlink(missing_ok=True)
        except BaseException:
            state.serial = before  # not written: the state in memory stays the one on disk
            raise
        _fsync_dir(self.path.parent)
        # The state is written and its serial covers every journal line (reads skip them), so a
        # journal that cannot be removed is harmless.
        with contextlib.suppress(OSError):
            self.journal_path.unlink(missing_ok=True)

    def fold(self) -> State:
        """Read state + journal and, if there was a journal, compact it into the state file."""
        state = self.read()
        if self.journal_path.exists():
            self.write(state, bump=False)
        return state

    # -- locking -------------------------------------------------------------------------
    @contextmanager
    def lock(self, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        self._mkdir()
        # thread_local=False: the executor's worker threads checkpoint under the caller's lock.
        lock = filelock.FileLock(self.lock_path, thread_local=False, is_singleton=False)
        try:
            lock.acquire(timeout=timeout, poll_interval=0.1)
        except filelock.Timeout as exc:
            raise StateLockedError(self.location, self._holder()) from exc
        except OSError as exc:
            raise StateWriteError(str(self.lock_path), "create the lock file", exc) from exc
        info = LockInfo.new(operation)
        try:
            try:
                _replace_small(self.info_path, (json.dumps(info.to_dict()) + "\n").encode())
            except OSError as exc:
                raise StateWriteError(str(self.info_path), "record the lock's holder in", exc) from exc
            self._held = info
            yield info
        finally:
            self._held = None
            try:
                # A note that cannot be removed (the disk turned read-only mid-run) is harmless: the
                # OS lock is released below, and the next holder writes its own note over it.
                if self._holder_id() == info.id:
                    with contextlib.suppress(OSError):
                        self.info_path.unlink(missing_ok=True)
            finally:
                lock.release()

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.info_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _holder_id(self) -> str | None:
        holder = self._holder()
        return None if holder is None else str(holder.get("id"))

    def force_unlock(self, lock_id: str) -> LockInfo:
        holder = self._holder()
        if holder is None or holder.get("id") != lock_id:
            current = f"the current holder is {holder.get('id')}" if holder else "no lock is held"
            raise LockNotFoundError(f"no lock with id {lock_id} on {self.location}: {current}")
        # Unlinking the lock file lets the next writer lock a fresh inode even if the
        # old holder still lives (hung, or on another host sharing the disk).
        for path in (self.lock_path, self.info_path):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StateWriteError(str(path), "remove the lock file", exc) from exc
        return LockInfo(**{k: holder[k] for k in ("id", "operation", "who", "pid", "host", "since")})

    def _mkdir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateWriteError(str(self.path.parent), "create the state's folder", exc) from exc

    def _require_lock(self) -> None:
        if self._held is None:
            raise StateError(f"internal error: write to {self.location} without holding its lock")


class _Damaged(Exception):
    """Why some bytes are not a state; the store adds the file's name and the recovery hint."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _check_written(raw: bytes) -> tuple[str, int, IndexBuilder] | None:
    """Lineage, serial and index of a state laid out as ``write`` lays it out (``written_records``),
    every byte of it checked by msgspec (reconciler.state.check: a subset of what ``read``
    accepts), each record dropped as soon as its facts are taken, so the peak stays near the
    bytes; None for any other layout or anything the check refuses, which the caller then reads
    with pydantic (and ``read``'s errors)."""
    found = written_records(raw)
    if found is None:
        return None
    head, uuids, spans = found
    view = memoryview(raw)
    index, decode = IndexBuilder(uuids, spans), check.RECORD.decode
    with gc_paused():
        try:
            top = check.STATE.decode(head + b"}}")  # the top level, "products" closed at once
            pairs = iter(spans)
            for start, end in zip(pairs, pairs, strict=True):  # each record in turn, dropped once indexed
                record = decode(view[start:end])
                index.add(record.spec_hash, record.status, record.lacking())
        except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
            return None
    return top.lineage, top.serial, index


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Opened without blocking and checked before reading: a FIFO
    would wait for a writer forever, a symlink to /dev/zero would never end."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise _Damaged("it is not a regular file (a FIFO, a device or a socket)")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def _load(read: Callable[[], bytes], location: str) -> State:
    """Parse and validate a state; ``read`` is called again only to report an invalid one, so
    the bytes of a large state are not held while its records are built."""
    data = _parse(read(), location)
    try:
        return _validate_consuming(data)
    except ValidationError:
        pass
    del data
    # Invalid somewhere: validate the whole file again in one go, for the error of record.
    try:
        return State.model_validate(_parse(read(), location))
    except ValidationError as exc:
        raise _Damaged(_validation_problem(exc)) from exc


def _parse(raw: bytes, location: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Damaged(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        at = exc.start
        line, column = raw.count(b"\n", 0, at) + 1, at - raw.rfind(b"\n", 0, at)
        raise _Damaged(
            f"not valid JSON at line {line}, column {column}: byte 0x{raw[at]:02X} is not UTF-8"
        ) from exc
    except ValueError as exc:  # a number of more than 4,300 digits (Python's limit for int())
        raise _Damaged(f"not a state: {str(exc).split(';')[0]}") from exc
    except RecursionError:
        # json's C parser stops near 1,000 levels; a state is 6 deep.
        raise _Damaged(
            "not a state: JSON nested about 1,000 levels deep (a state is 6 levels deep)"
        ) from None
    return _checked(data, location)


def _checked(data: Any, location: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Damaged("expected a JSON object at the top level")
    version = data.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:
        raise StateVersionError(location, version, FORMAT_VERSION)
    return data


def _validation_problem(exc: ValidationError) -> str:
    """The first problem of a validation error, by its place in the file, and how many there are."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    count = exc.error_count()
    more = f" ({count} problems)" if count > 1 else ""
    if loc[-1:] == ["[key]"] and loc[:1] == ["products"]:
        key = str(loc[-2])
        key = key if key.isprintable() and len(key) <= 60 else _short(key)
        return f"products.{key}: the key is not a product uuid (8-4-4-4-12 hex digits, lower case){more}"
    where = ".".join(str(p) for p in loc)
    got = first.get("input")
    shown = (
        f", got {_short(got)}"
        if first["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list))
        else ""
    )
    return f"{where}: {first['msg']}{shown}{more}"


def _readable(read: Callable[[], bytes], location: str) -> State | None:
    try:
        return _load(read, location)
    except (OSError, _Damaged, StateVersionError, ValueError):
        return None


def _git_version(path: Path) -> State | None:
    """The state git would restore with ``git checkout -- path`` (the index's version), if the
    file is tracked, that version differs from the file, and it reads as a state."""
    try:
        shown = subprocess.run(
            ["git", "show", f":./{path.name}"], cwd=path.parent, capture_output=True, timeout=30, check=False
        )
        current = path.read_bytes() if path.is_file() else None
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0 or shown.stdout == current:
        return None
    return _readable(lambda: shown.stdout, str(path))


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _validate_consuming(data: dict[str, Any]) -> State:
    """``State.model_validate(data)``, a chunk of records at a time, dropping each chunk of parsed
    records as soon as it is validated: the peak holds the parsed JSON or the models, not both
    (one call per chunk, not per record, keeps pydantic's per-call cost small)."""
    products = data.get("products")
    if not isinstance(products, dict):
        return State.model_validate(data)
    state = State.model_validate({**data, "products": {}})
    records = state.products
    keys = list(products)
    for start in range(0, len(keys), _CHUNK):
        chunk = {key: products.pop(key) for key in keys[start : start + _CHUNK]}
        records.update(RECORDS_ADAPTER.validate_python(chunk))
    return state


_CHUNK = 1000


def _require_uuids(keys: Iterable[str], location: str) -> None:
    """Never write what could not be read back: every product key a canonical uuid."""
    bad = next((k for k in keys if not is_product_uuid(k)), None)
    if bad is not None:
        raise StateError(
            f"internal error: refusing to record {_short(bad)} in {location}: not a product uuid"
        )


def _ensure_lineage(state: State) -> None:
    if not state.lineage:
        state.lineage = str(uuidlib.uuid4())


def _append(path: Path, line: bytes) -> None:
    """Append one journal line durably, or leave the journal exactly as it was: a short write on
    a full disk is cut off again, so no torn line is left for the next checkpoint to follow."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateWriteError(str(path), "append a checkpoint to", exc) from exc
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise StateWriteError(str(path), "append a checkpoint to", exc) from exc
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, location: str) -> Path:
    """``data`` in a new fsync'd temp file beside ``path``; removed again if the disk refuses it."""
    try:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateWriteError(location, "write", exc) from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StateWriteError(location, "write", exc) from exc
        raise
    return tmp


def _keep_backup(path: Path, backup: Path) -> None:
    """Make ``backup`` the current ``path``, atomically: a hard link (no disk space, the old state
    never half-copied), or a copy through a temp file where the file system has no hard links."""
    staged = backup.with_name(f"{backup.name}.{uuidlib.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(path, staged)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.ENOSYS):
                raise
            shutil.copy2(path, staged)
            with open(staged, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(staged, backup)
    finally:
        staged.unlink(missing_ok=True)


def _replace_small(path: Path, data: bytes) -> None:
    """Write a small file whole or not at all (the lock holder's description)."""
    staged = path.with_name(f"{path.name}.{uuidlib.uuid4().hex[:8]}.tmp")
    try:
        staged.write_bytes(data)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


_CONFORMS: type[StateStore] = FileStateStore  # mypy checks the backend against the contract here
