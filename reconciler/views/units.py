"""Quantities as people read them."""

from __future__ import annotations


def size(count: int) -> str:
    """A byte count in bytes, KiB, MiB or GiB (one decimal above bytes)."""
    step = 1024.0
    amount = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if amount < step or unit == "GiB":
            return f"{int(amount)} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= step
    return f"{count} bytes"  # unreachable: the loop returns at GiB
