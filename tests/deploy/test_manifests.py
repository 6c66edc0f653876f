"""deploy/ checked offline: every overlay rendered by kustomize (kubectl's built-in) and validated against the
Kubernetes API schemas (kubernetes-validate, strict), then the invariants an operator relies on: probes on
the ports the servers really listen on, grace periods longer than the servers', non-root and read-only
containers, no secret inlined anywhere, per-request balancing to the embed tier, the GPU overlay's GPU."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from embed_service.config import EmbedConfig
from store_service.config import StoreConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl")
KUBERNETES_VERSION = "1.30.0"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|API_?KEY|CREDENTIAL", re.I)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")


def render(overlay: str) -> list[dict]:
    done = subprocess.run([KUBECTL or "kubectl", "kustomize", str(DEPLOY / overlay)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/dev", "overlays/gpu", "overlays/object-storage"])
def docs(request) -> list[dict]:
    return render(request.param)


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in docs])
    return found[0]


def config_of(docs: list[dict], name: str) -> dict[str, str]:
    return one(docs, "ConfigMap", name)["data"]


def workloads(docs: list[dict]) -> list[tuple[dict, dict, type]]:
    """(workload, its ConfigMap data, its settings class) for both services."""
    return [(one(docs, "Deployment", "vectorlane-embed"), config_of(docs, "vectorlane-embed-config"), EmbedConfig),
            (store_workload(docs), config_of(docs, "vectorlane-store-config"), StoreConfig)]


def store_workload(docs: list[dict]) -> dict:
    """The store: a StatefulSet with its volume, or a Deployment where its tables are on object storage."""
    found = [d for d in docs
             if d["kind"] in ("StatefulSet", "Deployment") and d["metadata"]["name"] == "vectorlane-store"]
    assert len(found) == 1, [d["kind"] for d in found]
    return found[0]


def test_every_document_is_valid_for_the_kubernetes_api(docs):
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_settings_are_real_and_probes_hit_the_port_the_server_listens_on(docs):
    for workload, data, settings in workloads(docs):
        known = {f"VECTORLANE_{name.upper()}" for name in settings.__dataclass_fields__}
        unknown = {k for k in data if k.startswith("VECTORLANE_")} - known
        assert not unknown, f"{workload['metadata']['name']}: no such settings {unknown}"
        config = settings.from_args([], environ=data)  # what the server will run with
        assert config.host == "0.0.0.0" and config.metrics_host == "0.0.0.0"
        pod = workload["spec"]["template"]
        container = pod["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": config.port, "metrics": config.metrics_port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == config.port, probe  # numeric, native gRPC health
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == config.metrics_port
        assert pod["spec"]["terminationGracePeriodSeconds"] > config.grace_seconds


def test_containers_run_unprivileged_with_resources(docs):
    for workload, _, _ in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"] and not security.get("privileged")
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert "/tmp" in writable  # the only writable places: volumes


def secret_settings() -> set[str]:
    """The variables of settings marked secret (tokens), for both services."""
    return {f"VECTORLANE_{name.upper()}" for cls in (EmbedConfig, StoreConfig)
            for name, field in cls.__dataclass_fields__.items() if field.metadata.get("secret")}


def test_no_secret_is_inlined(docs):
    assert {"VECTORLANE_AUTH_TOKENS", "VECTORLANE_EMBED_AUTH_TOKEN"} <= secret_settings()
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by the operator, not shipped"
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            inlined = [k for k in doc["data"] if SECRET_NAME.search(k) or k in secret_settings()]
            assert not inlined, (doc["metadata"]["name"], inlined)
    for workload, _, _ in workloads(docs):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]) or env["name"] in secret_settings():
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]


def test_clients_balance_over_every_embed_pod(docs):
    headless = one(docs, "Service", "vectorlane-embed-headless")
    assert headless["spec"]["clusterIP"] == "None"
    embed = one(docs, "Deployment", "vectorlane-embed")
    labels = embed["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in headless["spec"]["selector"].items())
    store = StoreConfig.from_args([], environ=config_of(docs, "vectorlane-store-config"))
    assert store.embed_address == f"dns:///{headless['metadata']['name']}:{headless['spec']['ports'][0]['port']}"
    hpa = one(docs, "HorizontalPodAutoscaler", "vectorlane-embed")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": embed["metadata"]["name"]}
    pdb = one(docs, "PodDisruptionBudget", "vectorlane-embed")
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())



def test_the_store_is_a_deployment_with_an_hpa_on_object_storage_and_a_statefulset_on_a_disk(docs):
    workload = store_workload(docs)
    store = StoreConfig.from_args([], environ=config_of(docs, "vectorlane-store-config"))
    headless = one(docs, "Service", "vectorlane-store-headless")
    assert headless["spec"]["clusterIP"] == "None"  # clients balance per request: dns:/// + round_robin
    if not store.on_object_storage:
        assert workload["kind"] == "StatefulSet" and workload["spec"]["replicas"] == 1  # one writer per volume
        assert workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert store.data_dir == "/data"
        return
    assert workload["kind"] == "Deployment" and workload["spec"]["replicas"] >= 2
    assert "volumeClaimTemplates" not in json.dumps(docs) and "persistentVolumeClaim" not in json.dumps(docs)
    pod = workload["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in headless["spec"]["selector"].items())
    hpa = one(docs, "HorizontalPodAutoscaler", "vectorlane-store")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "vectorlane-store"}
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = one(docs, "PodDisruptionBudget", "vectorlane-store")
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    container = pod["spec"]["containers"][0]
    assert {"secretRef": {"name": "vectorlane-object-storage", "optional": True}} in container["envFrom"]
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 300
    assert store.consistency_interval() == 2.0


def test_overlays():
    dev = render("overlays/dev")
    assert one(dev, "Deployment", "vectorlane-embed")["spec"]["replicas"] == 1
    assert one(dev, "StatefulSet", "vectorlane-store")["spec"]["replicas"] == 1
    assert "nvidia.com/gpu" not in json.dumps(dev)
    gpu = render("overlays/gpu")
    pod = one(gpu, "Deployment", "vectorlane-embed")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == container["resources"]["limits"]["nvidia.com/gpu"]
    assert container["image"].startswith("vectorlane/embed-cuda:")
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    embed = EmbedConfig.from_args([], environ=config_of(gpu, "vectorlane-embed-config"))
    settings = {spec.name: dict(spec.settings) for spec in embed.preload_specs()}
    assert settings["sentence-transformers"] == {"device": "cuda", "precision": "fp16"}


@pytest.mark.parametrize("name, port, metrics, script", [("embed", 50052, 9452, "vectorlane-embed"),
                                                         ("embed-cuda", 50052, 9452, "vectorlane-embed"),
                                                         ("store", 50051, 9451, "vectorlane-store")])
def test_images_run_as_a_fixed_non_root_user_without_healthcheck(name, port, metrics, script):
    text = (DEPLOY / "images" / f"{name}.Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "HEALTHCHECK" not in text  # Kubernetes probes do it
    assert re.search(rf"^EXPOSE {port} {metrics}$", text, re.M)
    assert f'ENTRYPOINT ["{script}"]' in text
    assert script in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("name, extra", [("embed", "embed"), ("embed-cuda", "embed"), ("store", "store")])
def test_each_image_installs_only_its_services_extra(name, extra):
    """An image installs the contract and its service's extra of vectorlane-server (the store's has no torch),
    never the client."""
    text = (DEPLOY / "images" / f"{name}.Dockerfile").read_text()
    installs = re.findall(r"pip install -c constraints\.txt \./contract '\.\[([a-z,]+)\]'", text)
    assert "COPY client" not in text
    assert installs == [extra], installs
    installs_torch = any("torch" in line for line in text.splitlines() if line.startswith(("RUN", " &&")))
    assert installs_torch == (extra == "embed")
