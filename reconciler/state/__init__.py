"""Recorded state: the model, the store contract and the JSON-file backend."""

from reconciler.state.filestore import FileStateStore
from reconciler.state.model import FORMAT_VERSION, Attachment, PastRender, ProductRecord, RenderRequest, State, Status
from reconciler.state.store import LockInfo, StateStore, utcnow

__all__ = ["FORMAT_VERSION", "Attachment", "FileStateStore", "LockInfo", "PastRender", "ProductRecord", "RenderRequest",
           "State", "StateStore", "Status", "utcnow"]
