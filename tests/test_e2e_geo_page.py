"""The Geo status page in a real browser (Debian's Chromium driven by Playwright) against three
real sites: a primary and two secondaries, one limited by selective sync to one namespace, the
other with a project whose replica cannot be written. The page's numbers are compared with the
API's, the selection is shown, the failed project is shown with the cause its replicator
recorded, an action taken from the page repairs it, and screenshots at 1280 px and at phone
width are written to test-artifacts/ (GEOGIT_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import Account, Api, clone_url, git
from geo_support import registry, served_locally, wait_until
from playwright.sync_api import Browser, Page, sync_playwright

from geogit.common.paths import hashed_repository_path
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import make_work_tree

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags Chromium needs as root on a machine with no outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("GEOGIT_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as tansu:
        yield tansu


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, broker: TansuBroker
) -> Iterator[tuple[Site, Site, Site, Api, str]]:
    # secondary-2 never retries the broken replica by itself within the test (a retry after
    # the repair would race the page's resync button, which is what the test clicks).
    patient = {2: {"GEOGIT_RETRY_BASE_SECONDS": "600", "GEOGIT_RETRY_MAX_SECONDS": "600"}}
    with running_sites(
        tmp_path_factory.mktemp("geo-page"), broker.bootstrap, secondaries=2, secondary_env=patient
    ) as (primary, (first, second), admin):
        api = Api(primary.http_url, admin.token)
        yield primary, first, second, api, admin.token
        api.http.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _pushed(api: Api, primary: Site, work: Path) -> tuple[Account, dict[str, Any], Path]:
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(work, commits=2)
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
    return owner, project, tree


def _sign_in(page: Page, site: Site, token: str) -> None:
    page.goto(f"{site.http_url}/-/geo")
    assert page.url.startswith(f"{site.http_url}/-/geo/sign_in"), page.url
    page.get_by_label("Personal access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.http_url}/-/geo")


def _card(page: Page, site: str, field: str) -> str:
    return page.locator(f'section.card[data-site="{site}"] [data-field="{field}"]').inner_text()


def _site_id(api: Api, name: str) -> int:
    return int(next(s["id"] for s in api.call("GET", "/geo/sites") if s["name"] == name))


def _break_replica(site: Site, project: dict[str, Any]) -> Path:
    """A file where the replica's directory belongs: every fetch into it fails."""
    replica = site.repositories_dir / hashed_repository_path(project["id"])
    shutil.rmtree(replica)
    replica.write_text("not a repository\n")
    return replica


def test_the_page_shows_every_site_and_the_failed_project_and_repairs_it(
    sites: tuple[Site, Site, Site, Api, str], browser: Browser, tmp_path: Path
) -> None:
    primary, first, second, api, token = sites
    _, healthy, _ = _pushed(api, primary, tmp_path / "healthy")
    owner, doomed, tree = _pushed(api, primary, tmp_path / "doomed")
    for site in (first, second):
        wait_until(lambda s=site: served_locally(s, doomed, owner), what="the first sync")
    replica = _break_replica(second, doomed)
    (tree / "more.txt").write_text("a push the broken replica cannot take\n")
    git("add", "more.txt", cwd=tree)
    git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "more", cwd=tree)
    git("push", "-q", clone_url(primary.http_url, doomed, owner), "main", cwd=tree)
    wait_until(
        lambda: (registry(second, doomed["id"]) or {}).get("state") == "failed",
        what="the sync on secondary-2 to fail",
    )
    second_id = _site_id(api, second.name)
    wait_until(
        lambda: api.call("GET", f"/geo/sites/{second_id}/status")["repositories_failed_count"] >= 1,
        what="the primary to hear of the failure",
    )
    cause = str((registry(second, doomed["id"]) or {}).get("last_error", ""))
    assert cause.startswith("fetch failed"), cause
    # secondary-1 is limited to the doomed project's namespace: the healthy project leaves it.
    first_id = _site_id(api, first.name)
    selection = {"selective_sync_type": "namespaces", "selective_sync_namespace_ids": [owner.id]}
    api.call("PUT", f"/geo/sites/{first_id}", json=selection)
    healthy_replica = first.repositories_dir / hashed_repository_path(healthy["id"])
    wait_until(lambda: not healthy_replica.exists(), what="secondary-1 to drop the unselected")
    assert api.call("GET", f"/geo/sites/{first_id}/status")["repositories_count"] == 1

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, primary, token)

    # Every site, with the role and health the sites report.
    for site, role in ((primary, "primary"), (first, "secondary"), (second, "secondary")):
        card = page.locator(f'section.card[data-site="{site.name}"]')
        assert card.count() == 1
        assert role in card.locator("h3").inner_text()
        services = card.locator("[data-service]")
        names = {services.nth(i).get_attribute("data-service") for i in range(services.count())}
        assert names >= {"internal-api", "database", "storage", "edge-proxy", "replicator"}
        assert card.locator("li.bad[data-service]").count() == 0, card.inner_text()

    # The numbers are the API's (asked before and after the page, so a sync in between
    # cannot make them disagree by accident).
    for site in (first, second):
        site_id = _site_id(api, site.name)

        def matches(site: Site = site, site_id: int = site_id) -> bool:
            before = api.call("GET", f"/geo/sites/{site_id}/status")
            page.reload()
            shown = {
                "synced": _card(page, site.name, "synced"),
                "failed": _card(page, site.name, "failed"),
                "verified": _card(page, site.name, "verified"),
            }
            after = api.call("GET", f"/geo/sites/{site_id}/status")
            expected = {
                "synced": f"{after['repositories_synced_count']} / {after['repositories_count']}",
                "failed": str(after["repositories_failed_count"]),
                "verified": str(after["repositories_verified_count"]),
            }
            return before == after and shown == expected

        wait_until(matches, timeout=30, what=f"{site.name}'s numbers to match the API")
    assert _card(page, second.name, "failed") != "0"
    assert _card(page, first.name, "selective-sync") == f"namespaces: {owner.username}"
    assert _card(page, second.name, "selective-sync") == "everything"

    # The failed project, with the cause its replicator recorded.
    row = page.locator(f'#problems tr[data-project-id="{doomed["id"]}"][data-site="{second.name}"]')
    assert row.count() == 1
    assert row.locator('td[data-label="State"]').inner_text() == "failed"
    assert cause[:80] in row.locator('td[data-label="Last error"]').inner_text()
    assert int(row.locator('td[data-label="Attempts"]').inner_text()) >= 1
    assert page.locator(f'#problems tr[data-project-id="{healthy["id"]}"]').count() == 0
    page.get_by_label("Search by project path or error").fill(doomed["path"])
    page.get_by_role("button", name="Search").click()
    assert page.locator("#problems tbody tr").count() == 1
    assert page.locator("svg.chart title").text_content() == "Replication lag, last hour"
    assert page.locator("svg.chart polyline, svg.chart circle").count() >= 2  # lag was reported

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{primary.http_url}/-/geo")
    page.screenshot(path=str(ARTIFACTS / "geo-status-1280.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    _sign_in(phone, primary, token)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    phone.screenshot(path=str(ARTIFACTS / "geo-status-phone.png"), full_page=True)
    phone.close()

    # Repair the cause, then resync from the page: the replica catches up, the row goes.
    replica.unlink()
    page.get_by_label("Search by project path or error").fill(doomed["path"])
    page.get_by_role("button", name="Search").click()
    page.get_by_role(
        "button", name=f"resync {doomed['path_with_namespace']} on {second.name}"
    ).click()
    assert "Requested: resync" in page.locator("p.notice").inner_text()
    head = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
    wait_until(lambda: served_locally(second, doomed, owner, head), what="the resync")

    def cleared() -> bool:
        page.goto(f"{primary.http_url}/-/geo")
        return page.locator(f'#problems tr[data-project-id="{doomed["id"]}"]').count() == 0

    wait_until(cleared, timeout=30, what="the failed row to go")

    # The project's own page: every secondary at the primary's sequence again.
    def caught_up() -> bool:
        page.goto(f"{primary.http_url}/-/geo/projects/{doomed['id']}")
        primary_seq = page.locator('[data-field="primary-seq"]').inner_text()
        rows = [page.locator(f'#replicas tr[data-site="{site.name}"]') for site in (first, second)]
        return all(
            row.locator('[data-field="seq"]').inner_text() == primary_seq
            and row.locator('td[data-label="State"]').inner_text() == "synced"
            for row in rows
        )

    wait_until(caught_up, timeout=30, what="the project page to show both replicas caught up")
    page.close()


def test_a_secondarys_page_is_its_own_view_and_links_to_the_primary(
    sites: tuple[Site, Site, Site, Api, str], browser: Browser
) -> None:
    primary, first, _, _, token = sites
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, first, token)
    assert "secondary's own view" in page.inner_text("main")
    link = page.locator("#primary-link")
    assert link.get_attribute("href") == f"{primary.http_url}/-/geo"
    assert page.locator('[data-field="own-feed-position"]').inner_text().isdigit()
    assert page.get_by_role("button", name="Resync").count() == 0  # no actions here
    assert (
        page.locator(f'section.card[data-site="{first.name}"] .badge', has_text="this site").count()
        == 1
    )
    page.screenshot(path=str(ARTIFACTS / "geo-status-secondary.png"), full_page=True)
    page.close()


def test_anonymous_visitors_are_sent_to_sign_in_and_a_bad_token_is_refused(
    sites: tuple[Site, Site, Site, Api, str], browser: Browser
) -> None:
    primary = sites[0]
    page = browser.new_page()
    page.goto(f"{primary.http_url}/-/geo/projects/1")
    assert "/-/geo/sign_in?return_to=/-/geo/projects/1" in page.url
    page.get_by_label("Personal access token").fill("glpat-forged")
    page.get_by_role("button", name="Sign in").click()
    assert "that token is not valid here" in page.locator("#sign-in-error").inner_text()
    page.close()
