"""Which events a site applies, by epoch (DESIGN §10): only those of the epoch their global
sequence falls under."""

from __future__ import annotations

import pytest

from geogit.internal_api.geo.epochs import EpochHistory, EpochStart

# Epoch 1 from the start; epoch 2 took over after 125; epoch 3 after 300.
HISTORY = EpochHistory(
    [EpochStart(1, 0, "primary"), EpochStart(2, 125, "eu"), EpochStart(3, 300, "primary")]
)


@pytest.mark.parametrize(
    ("epoch", "seq", "verdict"),
    [
        (1, 1, "current"),
        (1, 125, "current"),
        (2, 126, "current"),
        (3, 301, "current"),
        # The old primary kept writing after it was replaced: its late events are refused.
        (1, 126, "stale"),
        (2, 301, "stale"),
        # An epoch claiming sequences that belong to an earlier one is not genuine either.
        (2, 100, "stale"),
        # A promotion this site has not learnt of yet.
        (4, 302, "unknown"),
    ],
)
def test_an_event_is_applied_only_under_its_own_epoch(epoch: int, seq: int, verdict: str) -> None:
    assert HISTORY.judge(epoch, seq) == verdict


def test_an_event_its_epochs_primary_did_not_write_is_refused() -> None:
    assert HISTORY.judge(2, 130, "eu") == "current"
    assert HISTORY.judge(2, 130, "mallory") == "stale"


def test_an_epoch_missed_while_away_is_asked_about_not_judged() -> None:
    skipped = EpochHistory([EpochStart(1, 0), EpochStart(3, 300, "primary")])
    assert skipped.judge(2, 200, "eu") == "unknown"


def test_a_site_that_knows_no_promotion_is_at_epoch_one() -> None:
    empty = EpochHistory([])
    assert empty.latest == 1 and empty.judge(1, 10) == "current"
    assert empty.judge(2, 10) == "unknown"
