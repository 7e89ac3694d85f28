"""`geogit geo promote SITE --planned|--force`: make a secondary the primary in one command
(DESIGN §10).

It asks the candidate for its site id, prints the preview's risk in plain lines (how far the
candidate's event log is behind the most any reachable site has seen, which sites it could not
reach, which replicas are behind, what blocks the promotion), then asks the candidate to
promote itself and prints the outcome: the new epoch, the sequence it starts after, and which
sites followed. The flag is the confirmation, so `--force` prints the risk and goes ahead
without a prompt: it is meant for a primary that is gone, when nobody is there to answer one.
The server decides what a blocker stops.
"""

from __future__ import annotations

from collections.abc import Callable

from geogit.common.geo_coordination import (
    Follower,
    ProjectBehind,
    PromotionMode,
    PromotionOut,
    PromotionPreview,
    SiteSeen,
)
from geogit.devstack.api import AdminApi
from geogit.devstack.stack import Stack


class PromoteError(RuntimeError):
    """The stack has no such site."""


def _gap(preview: PromotionPreview, mode: PromotionMode) -> str:
    if preview.gap <= 0:
        return "  gap: 0 events; nothing is at risk"
    if mode == "planned":
        return f"  gap: {preview.gap} events; a planned promotion waits until it has them"
    return f"  gap: {preview.gap} events (the RPO): lost unless they reach {preview.candidate}"


def _pushes_behind(preview: PromotionPreview) -> str:
    return (
        f"  {preview.pushes_behind} pushes {preview.candidate} has heard of are not in its"
        f" replicas yet; {preview.projects_behind_count} projects behind"
    )


def _probe(probe: SiteSeen) -> str:
    if not probe.reachable:
        return f"  site {probe.site}: UNREACHABLE ({probe.error or 'no answer'})"
    return f"  site {probe.site}: {probe.role} at epoch {probe.epoch}, seq {probe.last_global_seq}"


def _behind(project: ProjectBehind) -> str:
    seq = project.replica_seq
    replica = "no replica" if seq is None else f"replica at seq {seq}"
    return (
        f"  project {project.full_path} (id {project.project_id}) behind: {replica},"
        f" latest seq {project.latest_seq}"
    )


def risk_lines(preview: PromotionPreview, mode: PromotionMode) -> list[str]:
    """What promoting now puts at risk, one fact a line."""
    return [
        f"promotion of {preview.candidate} ({mode}): epoch {preview.epoch} -> {preview.next_epoch}",
        f"  {preview.candidate} has applied events up to seq {preview.candidate_seq};"
        f" the highest seq any reachable site has seen is {preview.highest_seen_seq}",
        _gap(preview, mode),
        _pushes_behind(preview),
        *(_probe(probe) for probe in preview.sites),
        *(_behind(project) for project in preview.projects_behind),
        *(f"  blocker: {blocker}" for blocker in preview.blockers),
    ]


def _follower(follower: Follower, primary: str) -> str:
    if follower.followed:
        return f"  {follower.site}: follows {primary}"
    return f"  {follower.site}: did not follow ({follower.error or 'no reason given'})"


def outcome_lines(result: PromotionOut) -> list[str]:
    return [
        f"{result.site} is primary at epoch {result.epoch}: its events continue after seq"
        f" {result.after_seq} ({result.mode}, waited {result.waited_seconds:.1f} s)",
        *(_follower(follower, result.site) for follower in result.followers),
    ]


def promote(stack: Stack, name: str, mode: PromotionMode, say: Callable[[str], None]) -> None:
    """Preview, print the risk, promote and print the outcome; ApiError carries the refusal."""
    try:
        candidate = stack.site(name)
    except KeyError as exc:
        known = ", ".join(site.name for site in stack.sites)
        raise PromoteError(f"no site {name!r} in the stack; it has: {known}") from exc
    with AdminApi(candidate.http_url, stack.admin.token) as api:
        site_id = api.site_state().site_id
        if site_id is None:
            raise PromoteError(f"{name} is not registered as a Geo site yet")
        for line in risk_lines(api.promotion_preview(site_id, mode), mode):
            say(line)
        say(f"promoting {name}; this returns once it is done (up to a few minutes)")
        for line in outcome_lines(api.promote(site_id, mode)):
            say(line)
