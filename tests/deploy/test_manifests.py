"""Every kustomization renders, and every object is valid for Kubernetes and follows our rules.

The Kubernetes objects are validated (strictly: unknown fields refused) against the JSON schemas
of current Kubernetes versions that ``kubernetes-validate`` ships; CloudSweep's own objects
against the CRDs' schemas and CEL rules (``cloudsweep.crds.validate``). The Prometheus Operator's
kinds have no schema here and get structural checks below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from cloudsweep import crds
from tests.deploy.conftest import REPO, by_kind, kustomizations, one, render

# The oldest Kubernetes minor version CloudSweep supports, and the newest the schemas know.
K8S_VERSIONS = ("1.31", kubernetes_validate.latest_version())
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
OVERLAYS = ("deploy/overlays/dev", "deploy/overlays/production")
OPERATOR_USER = 10001


def _pods(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            found.append((obj["metadata"]["name"], obj["spec"]["template"]))
    return found


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _operator(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "cloudsweep")


@pytest.mark.parametrize("folder", [str(p) for p in kustomizations()])
def test_kustomization_renders_valid_objects(folder: str) -> None:
    objects = render(folder)
    assert objects, f"{folder} renders nothing"
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']} of {folder}"
        if obj["kind"] in PROMETHEUS_OPERATOR_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1", name
            continue
        if obj["apiVersion"] == crds.API_VERSION:
            assert crds.validate(obj["kind"], obj) == [], name
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {exc.message}")


def test_every_kustomization_is_tested() -> None:
    found = {str(p) for p in kustomizations()}
    assert {"crds", "deploy/base", *OVERLAYS} <= found


@pytest.mark.parametrize("path", sorted((REPO / "deploy" / "samples").glob("*.yaml")))
def test_samples_are_valid_custom_resources(path: Path) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        assert crds.validate(obj["kind"], obj) == [], path.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(overlay: str) -> None:
    namespace = one(render(overlay), "Namespace", "cloudsweep")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in _pods(render(overlay)):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "hostNetwork" not in spec and "hostPID" not in spec, name
        mounts = {v["name"]: v for v in spec.get("volumes", [])}
        assert all(set(v) <= {"name", "emptyDir", "secret", "configMap"} for v in mounts.values())
        for container in _containers(pod):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert "privileged" not in context, where
            assert {"requests", "limits"} <= set(container["resources"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_deployment_follows_kopf_guidance(overlay: str) -> None:
    deployment = _operator(render(overlay))
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == OPERATOR_USER
    assert pod["serviceAccountName"] == "cloudsweep"
    (operator,) = pod["containers"]
    assert operator["args"][:1] == ["operator"]
    assert "--standalone" in operator["args"]
    assert operator["securityContext"]["runAsUser"] == OPERATOR_USER
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"healthz": 8080, "https-metrics": 9090, "webhook": 9443}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe
    # Migrations run before the new version starts.
    (migrate,) = pod["initContainers"]
    assert migrate["args"] == ["db", "upgrade"]
    assert migrate["image"] == operator["image"]
    for container in (migrate, operator):
        (env,) = [e for e in container["env"] if e["name"] == "CLOUDSWEEP_DATABASE_URL"]
        assert env["valueFrom"]["secretKeyRef"]["key"] == "url"


def test_production_takes_the_database_from_an_existing_secret() -> None:
    objects = render("deploy/overlays/production")
    assert by_kind(objects, "Secret") == [], "production must not ship a database secret"
    pod = _operator(objects)["spec"]["template"]["spec"]
    for container in _containers({"spec": pod}):
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
        assert refs[0] == {"name": "cloudsweep-database", "key": "url"}
        # Anything else is optional: the operator starts with only the database Secret.
        assert all(ref.get("optional") is True for ref in refs[1:])
    assert not [d for d in by_kind(objects, "Deployment") if "postgres" in d["metadata"]["name"]]
    assert {o["kind"] for o in objects} >= PROMETHEUS_OPERATOR_KINDS | {"ConfigMap"}


def test_dev_runs_its_own_database() -> None:
    objects = render("deploy/overlays/dev")
    secrets = {s["metadata"]["name"] for s in by_kind(objects, "Secret")}
    pod = _operator(objects)["spec"]["template"]["spec"]
    for container in _containers({"spec": pod}):
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e
        }
        assert refs <= secrets, refs - secrets
    assert one(objects, "Service", "cloudsweep-postgres")
    assert not PROMETHEUS_OPERATOR_KINDS & {o["kind"] for o in objects}
    assert _operator(objects)["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "cloudsweep:dev"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_pdb_and_network_policy_select_the_operator(overlay: str) -> None:
    objects = render(overlay)
    labels = _operator(objects)["spec"]["template"]["metadata"]["labels"]
    port_names = {
        p["name"] for p in _operator(objects)["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    metrics = one(objects, "Service", "cloudsweep-metrics")
    webhook = one(objects, "Service", "cloudsweep-webhook")
    for service in (metrics, webhook):
        assert _matches(service["spec"]["selector"], labels)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert webhook["spec"]["ports"] == [
        {"name": "https-webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"},
        {"name": "https-webhook-direct", "port": 9443, "targetPort": "webhook", "protocol": "TCP"},
    ]
    pdb = one(objects, "PodDisruptionBudget", "cloudsweep")
    assert _matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1
    policy = one(objects, "NetworkPolicy", "cloudsweep")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == port_names
    egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r.get("ports", [])}
    assert {53, 443, 5432} <= egress_ports
    for monitor in by_kind(objects, "ServiceMonitor"):
        assert _matches(monitor["spec"]["selector"]["matchLabels"], metrics["metadata"]["labels"])
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
            p["name"] for p in metrics["spec"]["ports"]
        }


EXPECTED_OPERATOR_RULES = [
    ("cloudsweep.io", "awsaccounts", ("list", "watch", "patch")),
    ("cloudsweep.io", "scanschedules", ("list", "watch", "patch")),
    ("cloudsweep.io", "cleanuppolicies", ("list", "watch", "patch")),
    ("cloudsweep.io", "cleanupapprovals", ("list", "watch", "patch")),
    ("cloudsweep.io", "awsaccounts/status", ("patch",)),
    ("cloudsweep.io", "scanschedules/status", ("patch",)),
    ("cloudsweep.io", "cleanuppolicies/status", ("patch",)),
    ("cloudsweep.io", "cleanupapprovals/status", ("patch",)),
    ("", "namespaces", ("list", "watch")),
    ("", "events", ("create",)),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", ("create",)),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations@cloudsweep.io",
        ("patch",),
    ),
    # kopf's managed mode creates and patches both kinds, and exits if either is forbidden.
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ("create",)),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations@cloudsweep.io",
        ("patch",),
    ),
    # The validating webhook's SubjectAccessReviews (tenant verbs approve and configure).
    ("authorization.k8s.io", "subjectaccessreviews", ("create",)),
    # Who a /metrics scraper is (its bearer token), before the SubjectAccessReview on /metrics.
    ("authentication.k8s.io", "tokenreviews", ("create",)),
]


def _flatten(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    flat = set()
    for rule in rules:
        for url in rule.get("nonResourceURLs", []):
            for verb in rule["verbs"]:
                flat.add(("nonResourceURL", url, verb))
        for group in rule.get("apiGroups", []):
            for resource in rule["resources"]:
                for name in rule.get("resourceNames", [""]):
                    for verb in rule["verbs"]:
                        key = f"{resource}@{name}" if name else resource
                        flat.add((group, key, verb))
    return flat


def test_operator_cluster_role_is_exactly_what_the_operator_touches() -> None:
    objects = render("deploy/base")
    role = one(objects, "ClusterRole", "cloudsweep-operator")
    expected = {(g, r, v) for g, r, verbs in EXPECTED_OPERATOR_RULES for v in verbs}
    assert _flatten(role["rules"]) == expected
    binding = one(objects, "ClusterRoleBinding", "cloudsweep-operator")
    assert binding["roleRef"]["name"] == "cloudsweep-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cloudsweep", "namespace": "cloudsweep"}
    ]
    for obj in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for group, resource, verb in _flatten(obj["rules"]):
            assert "*" not in (group, resource, verb), obj["metadata"]["name"]
            assert resource.split("@")[0] != "secrets", obj["metadata"]["name"]


def test_tenant_roles_read_approve_and_edit() -> None:
    objects = render("deploy/base")
    kinds = ("awsaccounts", "scanschedules", "cleanuppolicies")
    viewer = _flatten(one(objects, "ClusterRole", "cloudsweep-viewer")["rules"])
    member = _flatten(one(objects, "ClusterRole", "cloudsweep-member")["rules"])
    admin = _flatten(one(objects, "ClusterRole", "cloudsweep-admin")["rules"])
    reads = {
        ("cloudsweep.io", k, v)
        for k in (*kinds, "cleanupapprovals")
        for v in ("get", "list", "watch")
    }
    assert viewer == reads
    # Approving is creating a CleanupApproval (deleting it withdraws the approval); nobody
    # may change one, and only the operator writes its status.
    approving = {("cloudsweep.io", "cleanupapprovals", v) for v in ("create", "delete")}
    assert member == reads | approving | {
        ("cloudsweep.io", "cleanuppolicies", v) for v in ("patch", "update", "approve")
    }
    assert not {("cloudsweep.io", "cleanupapprovals", v) for v in ("update", "patch")} & admin
    assert admin >= member | {("cloudsweep.io", "cleanuppolicies", "configure")}
    assert {("cloudsweep.io", k, "delete") for k in kinds} <= admin
    assert not any(r.endswith("/status") for _, r, _ in viewer | member | admin)


def test_service_account_is_annotated_for_irsa() -> None:
    for overlay in OVERLAYS:
        account = one(render(overlay), "ServiceAccount", "cloudsweep")
        arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn.startswith("arn:aws:iam::") and ":role/" in arn


def test_only_the_metrics_reader_may_scrape() -> None:
    """/metrics answers the tokens of users with get on /metrics (handlers/metrics_access.py)."""
    objects = render("deploy/base")
    reader = one(objects, "ClusterRole", "cloudsweep-metrics-reader")
    assert _flatten(reader["rules"]) == {("nonResourceURL", "/metrics", "get")}
    binding = one(objects, "ClusterRoleBinding", "cloudsweep-metrics-reader")
    assert binding["roleRef"]["name"] == "cloudsweep-metrics-reader"
    [monitor] = by_kind(objects, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    policy = one(objects, "NetworkPolicy", "cloudsweep")
    [metrics_rule] = [
        r
        for r in policy["spec"]["ingress"]
        if any(p["port"] == "https-metrics" for p in r["ports"])
    ]
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    for obj in by_kind(objects, "ClusterRole"):
        if obj["metadata"]["name"] != "cloudsweep-metrics-reader":
            assert not any(k == "nonResourceURL" for k, _, _ in _flatten(obj["rules"]))


def test_the_gitops_role_edits_everything_and_approves_nothing() -> None:
    """Issue 17.4: Git owns the policies, people own the approvals."""
    objects = render("deploy/base")
    gitops = _flatten(one(objects, "ClusterRole", "cloudsweep-gitops")["rules"])
    admin = _flatten(one(objects, "ClusterRole", "cloudsweep-admin")["rules"])
    approving = {("cloudsweep.io", "cleanuppolicies", "approve")} | {
        ("cloudsweep.io", "cleanupapprovals", v) for v in ("create", "update", "patch", "delete")
    }
    assert not gitops & approving
    assert gitops == (admin - approving) | {
        ("cloudsweep.io", "cleanupapprovals", v) for v in ("get", "list", "watch")
    }


def test_gitops_examples_sync_policies_and_never_approve() -> None:
    """deploy/gitops: the controllers prune only what they track and apply as a subject bound to
    cloudsweep-gitops, which approves nothing (see the test above)."""
    folder = REPO / "deploy" / "gitops"
    argo = yaml.safe_load((folder / "argocd-application.yaml").read_text())
    assert argo["kind"] == "Application" and argo["spec"]["syncPolicy"]["automated"]["prune"]
    assert "ServerSideApply=true" in argo["spec"]["syncPolicy"]["syncOptions"]
    flux = yaml.safe_load((folder / "flux-kustomization.yaml").read_text())
    assert flux["kind"] == "Kustomization" and flux["spec"]["prune"] is True
    bindings = list(yaml.safe_load_all((folder / "rbac.yaml").read_text()))
    [gitops] = [
        b
        for b in bindings
        if b["metadata"]["name"] == "cloudsweep-gitops" and b["kind"] == "RoleBinding"
    ]
    assert gitops["roleRef"]["name"] == "cloudsweep-gitops"
    subjects = {(s["kind"], s["name"]) for s in gitops["subjects"]}
    assert ("ServiceAccount", flux["spec"]["serviceAccountName"]) in subjects
    assert ("ServiceAccount", "argocd-application-controller") in subjects
    for doc in (argo, flux):
        assert "CleanupApproval" not in yaml.safe_dump(doc)


def test_scan_jobs_are_allowed_only_in_the_operators_namespace() -> None:
    """Issue 16.1: a Role (never the ClusterRole) for scan Jobs, naming the Deployment and
    container the operator copies by default (CLOUDSWEEP_SCAN_JOB_DEPLOYMENT / _CONTAINER)."""
    from cloudsweep.settings import Settings

    objects = render("deploy/base")
    role = one(objects, "Role", "cloudsweep-scan-jobs")
    assert role["metadata"]["namespace"] == "cloudsweep"
    defaults = Settings()
    assert _flatten(role["rules"]) == {
        ("apps", f"deployments@{defaults.scan_job_deployment}", "get"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
    }
    binding = one(objects, "RoleBinding", "cloudsweep-scan-jobs")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "cloudsweep-scan-jobs",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cloudsweep", "namespace": "cloudsweep"}
    ]
    deployment = one(objects, "Deployment", defaults.scan_job_deployment)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert defaults.scan_job_container in {c["name"] for c in containers}
    cluster_wide = _flatten(one(objects, "ClusterRole", "cloudsweep-operator")["rules"])
    assert not {r for _, r, _ in cluster_wide} & {"jobs", "pods", "deployments"}
