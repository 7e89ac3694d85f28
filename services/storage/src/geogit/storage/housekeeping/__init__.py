"""Repository housekeeping: `heuristics` decides what a repository needs, `housekeeper` runs it."""

from geogit.storage.housekeeping.housekeeper import Housekeeper, HousekeepingResult

__all__ = ["Housekeeper", "HousekeepingResult"]
