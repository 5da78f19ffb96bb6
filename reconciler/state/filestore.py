"""JSON-file state backend: ``renders.state.json`` plus a journal, a backup and a lock.

Files beside the state (for ``state/renders.state.json``):
  ``.journal``  one JSON line per checkpoint, fsync'd; folded into the state by ``write``
  ``.backup``   the previous state, kept by every ``write``
  ``.lock``     the OS lock (filelock: flock/msvcrt), released by the kernel if we die
  ``.lock.info`` the holder's LockInfo, for the message a waiting process prints

A write is temp file → fsync → rename → fsync(dir): readers see the old or the new state,
never half of one. A state that cannot be parsed is reported and left untouched. A torn
last journal line (killed mid-append) was never acknowledged and is ignored; damage
anywhere else is corruption.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
from pydantic import ValidationError

from reconciler._gc import gc_paused
from reconciler.errors import LockNotFoundError, StateCorruptError, StateError, StateLockedError, StateVersionError
from reconciler.state.model import FORMAT_VERSION, RECORD_ADAPTER, ProductRecord, State
from reconciler.state.store import LockInfo


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
            for entry in self._journal_entries(state.lineage):
                self._apply(state, entry)
        return state

    def journal_length(self) -> int:
        try:
            with self.journal_path.open("rb") as fh:
                return sum(1 for _ in fh)
        except FileNotFoundError:
            return 0

    def _read_file(self) -> State:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            # No state yet: a first run that died before its first full write left only a
            # journal, whose lineage is the state's; otherwise an empty lineage, fixed at the
            # first write, so a plan made now still matches when it is applied.
            return State(lineage=self._journal_lineage() or "")
        except IsADirectoryError as exc:
            raise StateError(f"state path {self.location} is a directory",
                             hint="pass the state file itself, e.g. --state state/renders.state.json") from exc
        except OSError as exc:
            raise StateCorruptError(self.location, f"cannot read it ({exc.strerror})") from exc
        data = self._parse(raw)
        del raw  # 100+ MB for a large catalogue: not kept while the records are built
        try:
            return _validate_consuming(data)
        except ValidationError:
            pass
        # Invalid somewhere: validate the whole file again in one go, for the error of record.
        try:
            return State.model_validate(self._parse(self.path.read_bytes()))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StateCorruptError(self.location, f"{where}: {first['msg']} ({exc.error_count()} problem(s))") from exc
        except OSError as exc:
            raise StateCorruptError(self.location, f"cannot read it ({exc.strerror})") from exc

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateCorruptError(self.location, f"not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise StateCorruptError(self.location, "expected a JSON object at the top level")
        version = data.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise StateVersionError(self.location, version, FORMAT_VERSION)
        return data

    def _journal_lineage(self) -> str | None:
        try:
            with self.journal_path.open("rb") as fh:
                first = fh.readline()
            return str(json.loads(first)["lineage"]) if first.endswith(b"\n") else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _journal_entries(self, lineage: str) -> Iterator[dict[str, Any]]:
        try:
            lines = self.journal_path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateCorruptError(str(self.journal_path), f"cannot read it ({exc.strerror})") from exc
        complete = lines[:-1]  # a journal line is acknowledged only once its newline is on disk
        for number, line in enumerate(complete, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise self._journal_damaged(number, "not valid JSON") from exc
            if not (isinstance(entry, dict) and isinstance(entry.get("serial"), int)
                    and isinstance(entry.get("product"), str) and isinstance(entry.get("record"), (dict, type(None)))):
                raise self._journal_damaged(number, "not a checkpoint (needs serial, product and record)")
            if entry.get("lineage") != lineage:
                raise self._journal_damaged(number, f"belongs to another state (lineage {entry.get('lineage')})")
            entry["line"] = number
            yield entry

    def _journal_damaged(self, number: int, problem: str) -> StateCorruptError:
        return StateCorruptError(
            str(self.journal_path), f"line {number} is {problem}" if not problem.startswith("belongs")
            else f"line {number} {problem}",
            hint=(f"the journal holds the checkpoints of an interrupted apply; the state file {self.location} "
                  "was not changed. Move the journal aside to start from the last complete state (renders "
                  "it recorded as in flight will then be planned again)"))

    def _apply(self, state: State, entry: dict[str, Any]) -> None:
        record = entry["record"]
        if record is None:
            state.products.pop(entry["product"], None)
        else:
            try:
                state.products[entry["product"]] = RECORD_ADAPTER.validate_python(record)
            except ValidationError as exc:
                raise self._journal_damaged(entry["line"], f"an invalid record for {entry['product']}") from exc
        state.serial = entry["serial"]

    # -- writing -------------------------------------------------------------------------
    def checkpoint(self, state: State, product: str, record: ProductRecord | None) -> None:
        self._require_lock()
        _ensure_lineage(state)
        state.serial += 1
        if record is None:
            state.products.pop(product, None)
        else:
            state.products[product] = record
        entry = {"serial": state.serial, "lineage": state.lineage, "product": product,
                 "record": None if record is None else record.model_dump(mode="json")}
        line = (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write(self, state: State, *, bump: bool = True) -> None:
        """Atomic replace. ``bump=False`` only to fold a journal: content unchanged, serial kept."""
        self._require_lock()
        _ensure_lineage(state)
        if bump:
            state.serial += 1
        with gc_paused():
            data = state.to_json().encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.copy2(self.path, self.backup_path)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # thread_local=False: the executor's worker threads checkpoint under the caller's lock.
        lock = filelock.FileLock(self.lock_path, thread_local=False, is_singleton=False)
        try:
            lock.acquire(timeout=timeout, poll_interval=0.1)
        except filelock.Timeout as exc:
            raise StateLockedError(self.location, self._holder()) from exc
        except OSError as exc:
            raise StateError(f"cannot lock {self.location}: {exc.strerror}") from exc
        info = LockInfo.new(operation)
        try:
            self.info_path.write_text(json.dumps(info.to_dict()) + "\n")
            self._held = info
            yield info
        finally:
            self._held = None
            try:
                if self._holder_id() == info.id:
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
        self.lock_path.unlink(missing_ok=True)
        self.info_path.unlink(missing_ok=True)
        return LockInfo(**{k: holder[k] for k in ("id", "operation", "who", "pid", "host", "since")})

    def _require_lock(self) -> None:
        if self._held is None:
            raise StateError(f"internal error: write to {self.location} without holding its lock")


def _validate_consuming(data: dict[str, Any]) -> State:
    """``State.model_validate(data)``, record by record, dropping each parsed record as soon as
    it is validated: the peak holds the parsed JSON or the models, not both."""
    products = data.get("products")
    if not isinstance(products, dict):
        return State.model_validate(data)
    state = State.model_validate({**data, "products": {}})
    records = state.products
    for uuid in list(products):
        records[uuid] = RECORD_ADAPTER.validate_python(products.pop(uuid))
    return state


def _ensure_lineage(state: State) -> None:
    if not state.lineage:
        state.lineage = str(uuidlib.uuid4())


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
