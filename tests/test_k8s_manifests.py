"""deploy/k8s stays in step with the code: every GEOGIT_* variable the manifests set is a
setting of the service that reads it, every probe points at an endpoint that exists, and every
site (overlay) runs every service, a replicator included: a promotion demotes the primary to a
secondary without a redeploy."""

from __future__ import annotations

from pathlib import Path

import yaml

from geogit.common.settings import GeogitSettings
from geogit.edge_proxy.config import EdgeProxySettings
from geogit.internal_api.config import InternalApiSettings
from geogit.replicator.config import ReplicatorSettings
from geogit.ssh_gateway.config import SshGatewaySettings
from geogit.storage.config import StorageSettings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SETTINGS_BY_CONTAINER: dict[str, type[GeogitSettings]] = {
    "storage": StorageSettings,
    "internal-api": InternalApiSettings,
    "migrate": InternalApiSettings,
    "edge-proxy": EdgeProxySettings,
    "ssh-gateway": SshGatewaySettings,
    "replicator": ReplicatorSettings,
}


def _setting_name(variable: str) -> str:
    return variable.removeprefix("GEOGIT_").removesuffix("_FILE").lower()


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[Path]:
    """Base and overlay resources and patches; kustomization files are checked apart."""
    return [path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"]


def test_container_variables_are_settings() -> None:
    checked = 0
    for manifest in _manifests():
        for doc in _documents(manifest):
            if doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"] + pod.get("initContainers", []):
                fields = SETTINGS_BY_CONTAINER[container["name"]].model_fields
                for variable in container.get("env", []):
                    if variable["name"].startswith("GEOGIT_"):
                        assert _setting_name(variable["name"]) in fields, variable["name"]
                        checked += 1
    assert checked >= 10


def test_every_service_has_a_manifest() -> None:
    names = {
        container["name"]
        for manifest in _manifests()
        for doc in _documents(manifest)
        if doc.get("kind") in ("Deployment", "StatefulSet")
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert names == {"storage", "internal-api", "edge-proxy", "ssh-gateway", "replicator"}


def test_site_config_map_keys_are_settings_of_some_service() -> None:
    known = set().union(*(s.model_fields for s in SETTINGS_BY_CONTAINER.values()))
    for kustomization in K8S.rglob("kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            for literal in generator.get("literals", []):
                name = literal.split("=", 1)[0]
                assert _setting_name(name) in known, f"{kustomization}: {name}"


def _workloads(directory: Path) -> dict[str, set[str]]:
    """Containers per Deployment or StatefulSet that `kubectl apply -k directory` creates,
    following the kustomization's resources into the directories it names."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    workloads: dict[str, set[str]] = {}
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            workloads |= _workloads(path)
            continue
        for doc in _documents(path):
            if doc.get("kind") in ("Deployment", "StatefulSet"):
                containers = doc["spec"]["template"]["spec"]["containers"]
                workloads[doc["metadata"]["name"]] = {c["name"] for c in containers}
    return workloads


def test_every_site_runs_every_service_and_a_replicator() -> None:
    overlays = sorted(path for path in (K8S / "overlays").iterdir() if path.is_dir())
    assert [path.name for path in overlays] == ["primary", "secondary"]
    for overlay in overlays:
        workloads = _workloads(overlay)
        assert workloads["geogit-replicator"] == {"replicator"}, overlay.name
        assert set().union(*workloads.values()) == set(SETTINGS_BY_CONTAINER) - {"migrate"}


def test_every_site_mounts_its_geo_key_where_geo_tokens_are_signed() -> None:
    for name in ("internal-api.yaml", "replicator.yaml"):
        for doc in _documents(K8S / "base" / name):
            if doc.get("kind") != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                variables = {v["name"]: v.get("value") for v in container.get("env", [])}
                assert variables["GEOGIT_GEO_PRIVATE_KEY_FILE"] == (
                    "/etc/geogit/secrets/geo_private_key"
                )
