"""Which storage shard a new project's repository is created on: drawn by weight, as GitLab's
`repository_storages_weighted` does, so an installation adds a shard by giving it a weight and
drains one by setting its weight to 0 (existing repositories stay until they are moved).

GEOGIT_STORAGE_WEIGHTS is a JSON object, shard name → non-negative integer. Left empty, every
project goes to GEOGIT_DEFAULT_STORAGE, as before weights existed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping


class PlacementError(ValueError):
    """The weights cannot place a project: a configuration error, refused at start-up."""


def check_weights(weights: Mapping[str, int], storages: Mapping[str, str]) -> None:
    unknown = sorted(set(weights) - set(storages))
    if unknown:
        raise PlacementError(
            f"GEOGIT_STORAGE_WEIGHTS names shards not in GEOGIT_STORAGES: {', '.join(unknown)}"
            f" (configured: {', '.join(sorted(storages))})"
        )
    negative = sorted(name for name, weight in weights.items() if weight < 0)
    if negative:
        raise PlacementError(f"GEOGIT_STORAGE_WEIGHTS: negative weight for {', '.join(negative)}")
    if weights and not any(weights.values()):
        raise PlacementError("GEOGIT_STORAGE_WEIGHTS: every weight is 0, no shard takes projects")


def choose_shard(
    weights: Mapping[str, int], default_storage: str, draw: random.Random | None = None
) -> str:
    """A shard with probability weight / total; a shard of weight 0 is never chosen. Without
    weights, the default storage."""
    if not weights:
        return default_storage
    names = sorted(name for name, weight in weights.items() if weight > 0)
    chooser = draw or random
    return chooser.choices(names, weights=[weights[name] for name in names])[0]
