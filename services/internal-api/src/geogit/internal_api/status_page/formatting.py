"""How the page writes numbers and times: milliseconds as people read them, times as ages."""

from __future__ import annotations

from datetime import datetime

from geogit.internal_api.models import utcnow


def milliseconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms"


def age(moment: datetime | None) -> str:
    """ "12 s ago", "in 3 min": past and future (a next retry) alike."""
    if moment is None:
        return "never"
    seconds = (utcnow() - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 5400:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 172_800:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} d"
    return f"in {text}" if ahead else f"{text} ago"
