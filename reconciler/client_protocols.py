"""The client as each part of a run uses it, typed with the wire models (reconciler.client.wire).

``VntanaClient`` satisfies every one of them; they say what each caller needs of the platform,
so a caller can be driven by anything that speaks the same API (the sandbox behind a client in
the tests). Each extends the one before it only where its caller needs more.

  AttachmentReader  refresh and import: list a product's files, download one
  RenderClient      the executor: also trigger renders, delete files, the login it checks first,
                    and the request counters for the run summary
  WebhookClient     apply's webhook registration and ``reconciler webhooks``
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Protocol

from reconciler.client.limiter import ClientStats
from reconciler.client.session import LoginInfo
from reconciler.client.wire import Attachment, DownloadResult, TriggerResult, Webhook, Workspace
from reconciler.settings import ClientSettings


class AttachmentReader(Protocol):
    def list_attachments(self, product_uuid: str, entity_type: str | None = None) -> list[Attachment]:
        """Every attachment of a product (all pages), or only those of ``entity_type``."""

    def download(
        self, attachment: Attachment, store_type: str | None = None, sink: BinaryIO | None = None
    ) -> DownloadResult:
        """Stream one attachment into ``sink`` (or only hash it), hashing as it goes."""


class RenderClient(AttachmentReader, Protocol):
    @property
    def stats(self) -> ClientStats:
        """Request, retry and throttling counters, for the run summary."""

    @property
    def settings(self) -> ClientSettings: ...

    @property
    def organization_uuid(self) -> str: ...

    @property
    def login_info(self) -> LoginInfo: ...

    def login(self) -> None: ...

    def workspaces(self) -> list[Workspace]: ...

    def trigger_renders(self, product_uuids: Iterable[str], spec: Mapping[str, Any]) -> TriggerResult:
        """Trigger one render batch: the same ``spec`` for every product."""

    def delete_attachment(self, product_uuid: str, uuid: str) -> None: ...


class WebhookClient(Protocol):
    def create_webhook(
        self,
        url: str,
        events: Iterable[str],
        *,
        name: str | None = None,
        description: str | None = None,
        clients: Sequence[str] | None = None,
        disable: bool = False,
    ) -> Webhook: ...

    def list_webhooks(self) -> list[Webhook]: ...

    def delete_webhook(self, uuid: str) -> None: ...
