"""deploy/k8s stays in step with the code: every GEOGIT_* variable the manifests set is a
setting of the service that reads it, every site (overlay) runs every service, a replicator
included (a promotion demotes the primary to a secondary without a redeploy), every manifest is
valid against Kubernetes' own schemas, every Deployment has its disruption budget and, where it
scales on load, an autoscaler, the storage shards are the ones every reader of GEOGIT_STORAGES
names, and the Kafka partition count comes from one ConfigMap key.

Offline: the schemas are the ones the kubernetes-validate package ships; kustomize's own
resolution (resources, ConfigMap generators) is followed by hand, as far as these files use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
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
# The Kubernetes release the manifests are checked against: autoscaling/v2 and policy/v1 are
# there since 1.23 and 1.21.
KUBERNETES_VERSION = "1.32.0"
# How each Deployment is scaled: "cpu" by a HorizontalPodAutoscaler on CPU utilization (it
# owns the replica count); "fixed" by its replica count, by hand. Every Deployment has a
# PodDisruptionBudget either way; a new Deployment must be entered here.
SCALING = {
    "geogit-edge-proxy": "cpu",
    "geogit-ssh-gateway": "cpu",
    "geogit-internal-api": "cpu",
    # One consumer group dividing the repository topic's partitions: scaled by hand.
    "geogit-replicator": "fixed",
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


# --- what one site (overlay) creates -------------------------------------------------------


def _resources(directory: Path) -> list[dict[str, Any]]:
    """The documents of every resource `kubectl apply -k directory` creates, but for the
    ConfigMaps its generators make (`_config_maps`)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        documents += _resources(path) if path.is_dir() else _documents(path)
    return documents


def _config_maps(directory: Path) -> dict[str, dict[str, str]]:
    """Generated ConfigMaps by name: the bases' first, then this kustomization's generators
    (`behavior: merge` adds to or overrides a base's keys)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    maps: dict[str, dict[str, str]] = {}
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            maps |= _config_maps(path)
    for generator in kustomization.get("configMapGenerator", []):
        literals = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        behavior = generator.get("behavior", "create")
        assert (generator["name"] in maps) == (behavior != "create"), generator
        maps[generator["name"]] = (
            maps[generator["name"]] | literals if behavior == "merge" else literals
        )
    return maps


def _sites() -> list[Path]:
    return sorted(path for path in (K8S / "overlays").iterdir() if path.is_dir())


def _of_kind(documents: list[dict[str, Any]], *kinds: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] in kinds}


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _selected(selector: dict[str, str], workloads: dict[str, dict[str, Any]]) -> list[str]:
    """The workloads whose pods `selector` (matchLabels, or a Service's selector) selects."""
    return [name for name, doc in workloads.items() if _selects(selector, _pod_labels(doc))]


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"] + pod.get("initContainers", [])
    return containers


def _all_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) for every container and init container in the base."""
    workloads = _of_kind(_resources(K8S / "base"), "Deployment", "StatefulSet")
    for name, workload in workloads.items():
        for container in _containers(workload):
            yield name, container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container.get("env", [])}


# --- schemas ---------------------------------------------------------------------------------


def test_manifests_match_the_kubernetes_schemas() -> None:
    kinds = set()
    for manifest in _manifests():
        for doc in _documents(manifest):
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = doc["metadata"]["name"]
                pytest.fail(f"{manifest.name}: {doc['kind']} {name}: {exc.message}")
            kinds.add(doc["kind"])
    expected = {"Service", "Deployment", "StatefulSet", "PodDisruptionBudget"}
    assert kinds == expected | {"HorizontalPodAutoscaler"}


def test_the_schema_check_refuses_what_it_should() -> None:
    """The check above is strict: an unknown field and a wrong type both fail it."""
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "geogit-replicator"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "x"}}},
    }
    kubernetes_validate.validate(budget, KUBERNETES_VERSION, strict=True)
    for spec in ({"maxUnavailable": 1, "selektor": {}}, {"minAvailable": [1]}):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(budget | {"spec": spec}, KUBERNETES_VERSION, strict=True)


# --- scaling ---------------------------------------------------------------------------------


def test_every_service_selects_the_pods_of_one_workload() -> None:
    for site in _sites():
        documents = _resources(site)
        workloads = _of_kind(documents, "Deployment", "StatefulSet")
        for name, service in _of_kind(documents, "Service").items():
            selected = _selected(service["spec"]["selector"], workloads)
            assert len(selected) == 1, f"{site.name}: Service {name} selects {selected}"
        for name, workload in workloads.items():
            selector = workload["spec"]["selector"]["matchLabels"]
            assert _selected(selector, workloads) == [name], f"{site.name}: {name}"


def test_every_deployment_has_a_disruption_budget() -> None:
    for site in _sites():
        documents = _resources(site)
        deployments = _of_kind(documents, "Deployment")
        assert set(deployments) == set(SCALING), f"{site.name}: enter each in SCALING"
        budgets: dict[str, list[str]] = {name: [] for name in deployments}
        workloads = _of_kind(documents, "Deployment", "StatefulSet")
        for name, budget in _of_kind(documents, "PodDisruptionBudget").items():
            selected = _selected(budget["spec"]["selector"]["matchLabels"], workloads)
            assert len(selected) == 1 and selected[0] in deployments, f"{name}: {selected}"
            # One pod at a time: a drain goes on pod by pod (0 would stop it for good).
            assert budget["spec"].get("maxUnavailable") == 1, name
            budgets[selected[0]].append(name)
        assert all(len(names) == 1 for names in budgets.values()), f"{site.name}: {budgets}"


def test_autoscalers_scale_on_cpu_the_deployments_marked_so() -> None:
    for site in _sites():
        documents = _resources(site)
        deployments = _of_kind(documents, "Deployment")
        targets = []
        for name, autoscaler in _of_kind(documents, "HorizontalPodAutoscaler").items():
            spec = autoscaler["spec"]
            target = spec["scaleTargetRef"]
            assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment"), name
            assert target["name"] in deployments, f"{name}: no Deployment {target['name']}"
            targets.append(target["name"])
            # At least two, so the budget's one unavailable pod leaves one serving.
            assert 2 <= spec["minReplicas"] <= spec["maxReplicas"], name
            [metric] = spec["metrics"]
            assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu"), name
            assert metric["resource"]["target"]["type"] == "Utilization", name
            assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100, name
            # The autoscaler owns the replica count: one in the Deployment would be put back
            # by every apply.
            assert "replicas" not in deployments[target["name"]]["spec"], target["name"]
        assert sorted(targets) == sorted(name for name, how in SCALING.items() if how == "cpu")
        for name, how in SCALING.items():
            if how == "fixed":
                assert deployments[name]["spec"]["replicas"] >= 2, name


def test_every_container_requests_cpu_and_memory() -> None:
    """CPU utilization, which the autoscalers scale on, is measured against the request."""
    checked = set()
    for workload, container in _all_containers():
        requests = container.get("resources", {}).get("requests", {})
        assert {"cpu", "memory"} <= set(requests), f"{workload}: {container['name']}"
        checked.add(container["name"])
    assert checked == set(SETTINGS_BY_CONTAINER)


def test_replicators_are_three_by_default() -> None:
    """Three replicas of one consumer group: one may be drained while two go on, and the
    default partition count divides evenly among them (deploy/k8s/base/replicator.yaml)."""
    replicator = _of_kind(_resources(K8S / "base"), "Deployment")["geogit-replicator"]
    assert replicator["spec"]["replicas"] == 3
    partitions = int(_config_maps(K8S / "base")["geogit-kafka"]["GEOGIT_KAFKA_PARTITIONS"])
    assert partitions % replicator["spec"]["replicas"] == 0


# --- storage shards --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Where a storage shard's readers find it: its one pod's stable DNS name behind its
    headless Service, and its ports."""

    host: str
    grpc_port: int
    ops_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def _shards(documents: list[dict[str, Any]]) -> dict[str, Shard]:
    """The storage StatefulSets by shard name, each checked to be one shard as the readers of
    GEOGIT_STORAGES expect."""
    services = _of_kind(documents, "Service")
    shards = {}
    for name, workload in _of_kind(documents, "StatefulSet").items():
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert container["name"] == "storage", name
        shard = _env(container)["GEOGIT_STORAGE_NAME"]["value"]
        assert name == f"geogit-storage-{shard}", name
        # One pod per shard: a repository lives on one volume.
        assert workload["spec"]["replicas"] == 1, name
        service = services[workload["spec"]["serviceName"]]
        assert service["spec"]["clusterIP"] == "None", f"{name}: its Service is not headless"
        assert _selects(service["spec"]["selector"], _pod_labels(workload)), name
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        env = _env(container)
        assert env["GEOGIT_LISTEN_ADDRESS"]["value"] == f"0.0.0.0:{ports['grpc']}", name
        assert env["GEOGIT_OPS_ADDRESS"]["value"] == f"0.0.0.0:{ports['ops']}", name
        assert {ports["grpc"], ports["ops"]} <= {port["port"] for port in service["spec"]["ports"]}
        [claim] = workload["spec"]["volumeClaimTemplates"]
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == _env(container)["GEOGIT_STORAGE_ROOT"]["value"]
        shards[shard] = Shard(
            f"{name}-0.{service['metadata']['name']}", ports["grpc"], ports["ops"]
        )
    return shards


def _shard_files() -> dict[str, Path]:
    return {
        path.stem.removeprefix("storage-"): path for path in (K8S / "base").glob("storage-*.yaml")
    }


def test_every_reader_of_storages_names_every_shard() -> None:
    readers = {
        name for name, cls in SETTINGS_BY_CONTAINER.items() if "storages" in cls.model_fields
    }
    assert readers >= {"internal-api", "replicator"}
    for site in _sites():
        documents = _resources(site)
        shards = _shards(documents)
        # Every shard's manifest is in every site: a secondary keeps a replica on the shard of
        # the same name as the primary's copy.
        assert set(shards) == set(_shard_files()), site.name
        addresses = {name: shard.address for name, shard in shards.items()}
        seen = set()
        for workload in _of_kind(documents, "Deployment", "StatefulSet").values():
            for container in _containers(workload):
                if container["name"] in readers:
                    storages = json.loads(_env(container)["GEOGIT_STORAGES"]["value"])
                    assert storages == addresses, f"{site.name}: {container['name']}"
                    seen.add(container["name"])
        assert seen == readers, site.name


def test_every_shard_has_a_weight_and_a_health_url() -> None:
    documents = _resources(K8S / "base")
    shards = _shards(documents)
    api = _of_kind(documents, "Deployment")["geogit-internal-api"]
    for container in _containers(api):
        env = _env(container)
        weights = json.loads(env["GEOGIT_STORAGE_WEIGHTS"]["value"])
        assert set(weights) == set(shards), container["name"]
        assert all(weight >= 0 for weight in weights.values()) and any(weights.values())
        # New projects go to default_storage when no weights are set: it must be a shard too.
        assert InternalApiSettings.model_fields["default_storage"].default in shards
        assert "GEOGIT_DEFAULT_STORAGE" not in env
        health = json.loads(env["GEOGIT_SERVICE_HEALTH_URLS"]["value"])
        for name, shard in shards.items():
            url = f"http://{shard.host}:{shard.ops_port}/-/readiness"
            assert health[f"storage-{name}"] == url, name


def _shard_neutral(path: Path, shard: str) -> str:
    text = json.dumps(_documents(path), sort_keys=True)
    text = text.replace(f"geogit-storage-{shard}", "geogit-storage-SHARD")
    return text.replace('"value": "' + shard + '"', '"value": "SHARD"')


def test_storage_shards_differ_only_in_their_name() -> None:
    """Each shard is a copy of one manifest (storage-<shard>.yaml): a change to one must be
    made to every one."""
    files = _shard_files()
    assert len(files) >= 2, files
    neutral = {_shard_neutral(path, shard) for shard, path in files.items()}
    assert len(neutral) == 1, "the storage shards' manifests differ"


# --- Kafka partitions ------------------------------------------------------------------------


def test_kafka_partitions_come_from_one_config_map_key_everywhere() -> None:
    """The internal API's outbox relay creates the topics, the replicator creates them too if
    missing: with two counts the topics would get whichever came first."""
    readers = {
        name
        for name, cls in SETTINGS_BY_CONTAINER.items()
        if "kafka_partitions" in cls.model_fields
    }
    assert readers >= {"internal-api", "replicator"}
    values = set()
    for site in _sites():
        maps = _config_maps(site)
        holders = [name for name, keys in maps.items() if "GEOGIT_KAFKA_PARTITIONS" in keys]
        assert holders == ["geogit-kafka"], f"{site.name}: {holders}"
        value = maps["geogit-kafka"]["GEOGIT_KAFKA_PARTITIONS"]
        assert int(value) >= 1, site.name
        values.add(value)
        seen = set()
        for workload in _of_kind(_resources(site), "Deployment", "StatefulSet").values():
            for container in _containers(workload):
                variable = _env(container).get("GEOGIT_KAFKA_PARTITIONS")
                if variable is None:
                    continue
                assert variable["valueFrom"] == {
                    "configMapKeyRef": {"name": "geogit-kafka", "key": "GEOGIT_KAFKA_PARTITIONS"}
                }, f"{site.name}: {container['name']}"
                seen.add(container["name"])
        assert seen == readers, site.name
    # Every site's relay and replicators may create the same topics.
    assert len(values) == 1, values
