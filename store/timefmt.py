"""Timestamps as ISO 8601 text in UTC with an explicit ``Z``."""

from datetime import datetime, timezone


def iso_utc(timestamp: float) -> str:
    """``1764149744.123`` -> ``'2025-11-26T09:35:44.123Z'``."""
    dt = datetime.fromtimestamp(timestamp, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
