"""The kustomize base and overlay render and validate against Kubernetes' schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from deploy import render
from services.common.lineup import load_lineup
from tests.deploy.files import ROOT, is_service_module
from tests.deploy.tools import run_tool

K8S_VERSION = "1.30.0"


def rendered(path: str) -> list[dict[str, Any]]:
    result = run_tool("kubectl", "kustomize", str(ROOT / path))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("path", ["deploy/k8s", "deploy/k8s/overlays/example", "deploy/k8s/season"])
def test_manifests_render_and_validate(path: str) -> None:
    docs = rendered(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_each_process_is_a_probed_limited_deployment() -> None:
    docs = rendered("deploy/k8s/overlays/example")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    agents = {f"agent-{a.id}" for a in load_lineup(render.LINEUP).active}
    assert set(deployments) == {"market", "risk", "ledger", "gateway"} | agents
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Secret", "Service", "Namespace"} <= kinds
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["terminationGracePeriodSeconds"] >= 10
        (container,) = pod["spec"]["containers"]
        assert is_service_module(container["args"][2]), name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["resources"]["limits"] and container["resources"]["requests"], name
        assert container["image"].startswith("registry.example.com/"), name


def test_the_ledger_pod_makes_the_streams_as_the_admin_before_it_starts() -> None:
    docs = rendered("deploy/k8s/overlays/example")
    deployments = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert [n for n, pod in deployments.items() if pod.get("initContainers")] == ["ledger"]
    (init,) = deployments["ledger"]["initContainers"]
    assert tuple(init["args"]) == render.STREAMS_COMMAND
    assert init["image"] == deployments["ledger"]["containers"][0]["image"]
    env = {e["name"]: e for e in init["env"]}
    secret = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret["key"] == "NATS_PASSWORD_ADMIN"
    assert secret["name"].startswith("arena-nats")  # kustomize appends a content hash
    assert env["NATS_URL"]["value"] == "nats://admin:$(NATS_PASSWORD)@nats:4222"
    # The limits it applies are the settings every service compares the streams with.
    settings = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("arena-settings")
    )
    refs = [e["configMapRef"]["name"] for e in init["envFrom"]]
    assert refs == [settings["metadata"]["name"]]
    for variable in (
        "ARENA_STREAM_MAX_AGE_SECONDS",
        "ARENA_STREAM_MAX_BYTES",
        "ARENA_DLQ_MAX_AGE_SECONDS",
        "ARENA_DLQ_MAX_BYTES",
    ):
        assert variable in settings["data"], variable
    passwords = next(
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == secret["name"]
    )
    assert "NATS_PASSWORD_ADMIN" in passwords["data"]


def test_a_season_is_an_indexed_job_whose_pod_k_plays_run_k() -> None:
    docs = rendered("deploy/k8s/season")
    (job,) = [d for d in docs if d["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:4] == ["python", "-m", "devstack", "season"]
    option = dict(zip(args[4::2], args[5::2], strict=True))
    assert option["--runs"] == str(spec["completions"])
    assert option["--only-run"] == "$(JOB_COMPLETION_INDEX)"
    assert option["--database-server"] == "$(DATABASE_SERVER_URL)"
    env = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    index = env["JOB_COMPLETION_INDEX"]["fieldRef"]["fieldPath"]
    assert index == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["DATABASE_SERVER_URL"]["secretKeyRef"]["name"].startswith("arena-season-database")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[option["--data"]]["readOnly"] and option["--out"] in mounts
    assert "/tmp" in mounts  # the arena's own NATS and logs, on a read-only root
    lineup = next(d for d in docs if d["metadata"]["name"].startswith("arena-season-lineup"))
    assert lineup["data"]["agents.toml"] == render.LINEUP.read_text(encoding="utf-8")
