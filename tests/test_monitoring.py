"""deploy/monitoring against Prometheus' own tool and the running services: the alert rules pass
`promtool check rules` and their unit tests, every dashboard query parses as PromQL, and every
metric the rules and the dashboard name is one the real processes of a two-site stack export.
The same stack shows the lag metric per push: a quiet site's lag observations do not grow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from e2e import Api, clone_url, git
from geo_support import primary_and_secondary, served_locally, wait_until

from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.storage.testing import make_work_tree

MONITORING = Path(__file__).parent.parent / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRIC_NAME = re.compile(r"\bgeogit_[a-z0-9_]+")
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$site": ".*"}
# Labels the rules and the dashboard group by, which the scrape configuration must set.
TARGET_LABELS = {"namespace", "service", "pod"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    expressions += [
        variable["definition"].removeprefix("label_values(").rpartition(",")[0]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    for name, value in GRAFANA_VARIABLES.items():
        expressions = [expression.replace(name, value) for expression in expressions]
    return expressions


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The check above can fail: promtool refuses a rule whose expression does not parse."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(geogit_x[5m]"}]}]}
        )
    )
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    # promtool parses expressions in rule files: each query becomes a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"geogit:dashboard_query_{n}", "expr": expression}
                    for n, expression in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_scrape_configuration_sets_the_labels_the_rules_use() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    relabels = config["scrape_configs"][0]["relabel_configs"]
    labelled = {relabel.get("target_label") for relabel in relabels}
    assert labelled >= TARGET_LABELS
    used = set()
    for expression in rule_expressions():
        for clause in re.findall(r"by \(([^)]*)\)", expression):
            used |= {label.strip() for label in clause.split(",")}
    assert used - {"le"} <= TARGET_LABELS


# Against the running services --------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site, Api]]:
    with (
        TansuBroker() as broker,
        primary_and_secondary(tmp_path_factory.mktemp("monitoring"), broker.bootstrap) as stack,
    ):
        yield stack


def metrics_urls(site: Site) -> dict[str, str]:
    return {
        "edge-proxy": f"{site.http_url}/metrics",
        "internal-api": f"{site.internal_api_url}/metrics",
        "storage": f"{site.storage_ops_url}/metrics",
        "ssh-gateway": f"{site.ssh_ops_url}/metrics",
        "replicator": f"{site.replicator_ops_url}/metrics",
    }


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.text


def exported_names(text: str) -> set[str]:
    """Every series name a family declared in `# TYPE` can produce, sampled yet or not."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
    }
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names |= {name, base} | {base + suffix for suffix in suffixes.get(kind, ())}
    return names


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_every_metric_the_rules_and_dashboard_name_is_exported(
    stack: tuple[Site, Site, Api],
) -> None:
    exported: set[str] = set()
    for site in stack[:2]:
        for url in metrics_urls(site).values():
            exported |= exported_names(scrape(url))
    named = {
        name
        for expression in rule_expressions() + dashboard_expressions()
        for name in METRIC_NAME.findall(expression)
    }
    assert len(named) >= 20
    assert named - exported == set()


def test_lag_is_per_push_and_a_quiet_site_shows_none_growing(
    stack: tuple[Site, Site, Api], tmp_path: Path
) -> None:
    primary, secondary, api = stack
    replicator = metrics_urls(secondary)["replicator"]
    internal_api = metrics_urls(secondary)["internal-api"]
    # The secondary's feed confirms it is caught up; the primary has no feed to follow.
    wait_until(
        lambda: (
            (sample(scrape(internal_api), "geogit_geo_event_feed_caught_up_timestamp_seconds") or 0)
            > time.time() - 30
        ),
        what="the secondary's feed heartbeat",
    )
    primary_feed = scrape(metrics_urls(primary)["internal-api"])
    assert sample(primary_feed, "geogit_geo_event_feed_caught_up_timestamp_seconds") == 0

    before = sample(scrape(replicator), "geogit_replication_lag_seconds_count") or 0
    owner = api.account()
    project = api.project(owner)
    tree = make_work_tree(tmp_path, commits=2)
    git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
    commit = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
    wait_until(lambda: served_locally(secondary, project, owner, commit), what="the replica")

    def observed() -> float:
        return sample(scrape(replicator), "geogit_replication_lag_seconds_count") or 0

    wait_until(lambda: observed() > before, what="a lag observation for the push")
    assert observed() == before + 1
    # Quiet now, through two backfill rounds (each re-checks every project): no more samples.
    time.sleep(12)
    assert observed() == before + 1
