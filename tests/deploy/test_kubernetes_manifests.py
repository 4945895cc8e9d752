"""deploy/kubernetes, checked offline: it renders, matches the API schemas, has no unexplained security
finding, and agrees with what gateway_provisioners' kubernetes-provisioner really does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gateway_provisioners
import pytest
import yaml

from tests.support import ROOT

pytestmark = pytest.mark.timeout(300)

DEPLOY = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".venv-tools" / "bin"
KUSTOMIZATIONS = [DEPLOY / "base", DEPLOY / "overlays" / "example"]
GP = Path(gateway_provisioners.__file__).parent


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} is missing: run `make deploy-tools`"
    return str(path)


def offline(cmd: list[str]) -> list[str]:
    """Run a checker with no network at all (checkov phones home otherwise): a fresh network namespace."""
    return ["unshare", "--net", *cmd] if os.geteuid() == 0 and shutil.which("unshare") else cmd


def render(kustomization: Path) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: run tests/remote/provision.py (Debian's kubernetes-client)"
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base and the example overlay, each rendered."""
    path = tmp_path_factory.mktemp("k8s") / f"{request.param.name}.yaml"
    path.write_text(render(request.param))
    return path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `kubectl apply -k` of the example overlay sends (the base has no namespace of its own)."""
    path = tmp_path_factory.mktemp("k8s") / "example.yaml"
    path.write_text(render(DEPLOY / "overlays" / "example"))
    return path


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("version", ["1.29.0", "1.33.0"])
def test_every_object_matches_the_kubernetes_schemas(rendered: Path, version: str) -> None:
    result = subprocess.run(
        offline([tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(rendered)]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_nothing_unexplained(deployed: Path) -> None:
    result = subprocess.run(
        offline(
            [
                tool("checkov"),
                "--file", str(deployed),
                "--framework", "kubernetes",
                "--skip-download",
                "--output", "json",
            ]
        ),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    report = json.loads(result.stdout)
    results = report["results"]
    assert results["failed_checks"] == [], [
        (c["check_id"], c["check_name"]) for c in results["failed_checks"]
    ]
    readme = (ROOT / "README.md").read_text()
    skipped = {c["check_id"]: c for c in results["skipped_checks"]}
    assert set(skipped) == {"CKV_K8S_35", "CKV_K8S_38", "CKV_K8S_43"}
    for check_id, check in skipped.items():
        assert len(check["check_result"].get("suppress_comment", "")) > 40, check_id  # a real reason
        assert check_id in readme  # and the README says it too


def test_the_gateway_runs_hardened_with_probes(deployed: Path) -> None:
    docs = documents(deployed)
    pod = find(docs, "Deployment", "fastkg")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    # the one writable mount holds what the settings point at
    settings = find(docs, "ConfigMap", "fastkg-settings")["data"]
    (tmp,) = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    for key in ("HOME", "JUPYTER_RUNTIME_DIR", "GP_POD_TEMPLATE_DIR"):
        assert settings[key].startswith(tmp["mountPath"]), key


def test_the_kernelspec_is_what_jupyter_k8s_spec_makes(deployed: Path, tmp_path: Path) -> None:
    docs = documents(deployed)
    ours = json.loads(find(docs, "ConfigMap", "fastkg-kernelspecs")["data"]["python_kubernetes.json"])
    subprocess.run(
        [str(Path(os.sys.executable).with_name("jupyter-k8s-spec")), "install", f"--prefix={tmp_path}",
         "--kernel-name=python_kubernetes", "--log-level=ERROR"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    theirs = json.loads((tmp_path / "share/jupyter/kernels/python_kubernetes/kernel.json").read_text())
    assert ours["metadata"]["kernel_provisioner"]["provisioner_name"] == "kubernetes-provisioner"
    assert ours["argv"][2:] == theirs["argv"][2:]
    # the launcher is the one installed with gateway_provisioners (beside its pod template)
    launcher = ours["argv"][1].split("site-packages/gateway_provisioners/", 1)[1]
    assert (GP / launcher).exists()
    assert (GP / launcher).with_name("kernel-pod.yaml.j2").exists()
    # and the Deployment mounts it where JUPYTER_PATH looks
    settings = find(docs, "ConfigMap", "fastkg-settings")["data"]
    pod = find(docs, "Deployment", "fastkg")["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kernelspecs")
    assert mount["mountPath"] == f"{settings['JUPYTER_PATH']}/kernels"
    volume = next(v for v in pod["volumes"] if v["name"] == "kernelspecs")
    assert volume["configMap"]["items"] == [
        {"key": "python_kubernetes.json", "path": "python_kubernetes/kernel.json"}
    ]
    assert settings["KG_DEFAULT_KERNEL_NAME"] == "python_kubernetes"


def test_policies_select_the_pods_the_provisioner_makes(deployed: Path) -> None:
    docs = documents(deployed)
    template = (GP / "kernel-launchers/kubernetes/scripts/kernel-pod.yaml.j2").read_text()
    kernel_labels = find(docs, "NetworkPolicy", "fastkg-kernels")["spec"]["podSelector"]["matchLabels"]
    for key, value in kernel_labels.items():
        assert f"{key}: {value}" in template  # kernel pods carry exactly these labels
    gateway = find(docs, "Deployment", "fastkg")["spec"]["template"]["metadata"]["labels"]
    for policy in ("fastkg-gateway", "fastkg-kernels"):
        selectors = [find(docs, "NetworkPolicy", policy)["spec"]["podSelector"]["matchLabels"]]
        for rule in find(docs, "NetworkPolicy", policy)["spec"].get("ingress", []):
            selectors += [peer["podSelector"]["matchLabels"] for peer in rule.get("from", [])]
        for selector in selectors:
            assert selector.items() <= gateway.items() or selector == kernel_labels
    service = find(docs, "Service", "fastkg")["spec"]["selector"]
    assert service.items() <= gateway.items()


def test_rbac_lets_the_provisioner_manage_kernel_pods(deployed: Path) -> None:
    docs = documents(deployed)
    role = find(docs, "Role", "fastkg-kernels")
    pods = next(r for r in role["rules"] if "pods" in r["resources"])
    assert {"create", "delete", "get", "list", "watch"} <= set(pods["verbs"])
    binding = find(docs, "RoleBinding", "fastkg-kernels")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = find(docs, "Deployment", "fastkg")["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account,
            **({"namespace": ns} if (ns := role["metadata"].get("namespace")) else {}),
        }
    ]
