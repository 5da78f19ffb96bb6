"""The VNTANA API client: ``VntanaClient`` and the typed results it returns.

Nothing from httpx leaves this package; failures are ``reconciler.errors`` types.
This package never imports ``reconciler.sandbox`` (the sandbox is an independent reading of
the same API reference, so a shared bug could not hide behind shared code).
"""

from .api import VntanaClient
from .limiter import StatsSnapshot
from .retry import Idempotency, RetryPolicy
from .wire import (
    Attachment,
    DownloadResult,
    Organization,
    Product,
    TriggerResult,
    Webhook,
    Workspace,
)

__all__ = [
    "Attachment",
    "DownloadResult",
    "Idempotency",
    "Organization",
    "Product",
    "RetryPolicy",
    "StatsSnapshot",
    "TriggerResult",
    "VntanaClient",
    "Webhook",
    "Workspace",
]
