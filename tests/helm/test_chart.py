"""The Helm chart, rendered by Helm's own engine (the Helm SDK through
helm-python-sdk, no helm binary) with its default values and with a
production-like values file: it lints clean, every manifest validates
against the Kubernetes schemas (kubernetes-validate --strict), and every
Deployment is probed over gRPC on its health service."""

import json
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "wizdata"
KUBE_VERSION = "1.30.0"
ROLES = {"registry", "market-data", "indicator", "auth", "streaming", "gateway"}
VALUES = {
    "default": {},
    "production": helm.values_from_yaml((CHART / "ci" / "production-values.yaml").read_text()),
}


def render(values):
    manifests = helm.Chart.load(CHART).render(values, name="wizdata", namespace="markets", is_install=True)
    documents = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


@pytest.mark.parametrize("values", VALUES, ids=list(VALUES))
def test_the_chart_lints_clean(values):
    report = helm.lint(CHART, VALUES[values], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("values", VALUES, ids=list(VALUES))
def test_every_manifest_validates_against_the_kubernetes_schemas(values, tmp_path):
    documents = render(VALUES[values])
    assert documents
    files = []
    for at, document in enumerate(documents):
        path = tmp_path / f"{at:02}-{document['kind']}-{document['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(document))
        files.append(str(path))
    validated = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--kubernetes-version", KUBE_VERSION,
         *files],
        capture_output=True, text=True, timeout=120,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


@pytest.mark.parametrize("values", VALUES, ids=list(VALUES))
def test_every_role_runs_with_grpc_probes_on_its_health_service(values):
    documents = render(VALUES[values])
    deployments = {doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc
                   for doc in documents if doc["kind"] == "Deployment"}
    assert set(deployments) == ROLES
    for role, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", role]
        port = 8080 if role == "gateway" else 50051
        ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
        assert ports == {"grpc": port, "metrics": 9464}, "gRPC, and Prometheus text on the metrics port"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port, "service": ""}, (role, probe)


def test_production_values_use_the_existing_secret_and_autoscale():
    documents = render(VALUES["production"])
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    assert ("Secret", "wizdata-secrets") not in kinds, "the chart does not create a Secret when one is named"
    for doc in documents:
        if doc["kind"] == "Deployment":
            sources = doc["spec"]["template"]["spec"]["containers"][0]["envFrom"]
            assert {"secretRef": {"name": "wizdata-production"}} in sources
    autoscaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in documents if doc["kind"] == "HorizontalPodAutoscaler"}
    assert autoscaled == {"wizdata-market-data", "wizdata-indicator", "wizdata-streaming", "wizdata-gateway"}
    budgets = [doc for doc in documents if doc["kind"] == "PodDisruptionBudget"]
    assert len(budgets) == len(ROLES) and all(doc["spec"]["minAvailable"] == 2 for doc in budgets)
    (gateway_service,) = [doc for doc in documents if doc["kind"] == "Service" and doc["metadata"]["name"] == "wizdata-gateway"]
    assert gateway_service["spec"]["type"] == "LoadBalancer"


def test_traces_are_exported_only_where_an_endpoint_is_given():
    def config(values):
        (config_map,) = [doc for doc in render(values) if doc["kind"] == "ConfigMap"]
        return config_map["data"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in config({})
    assert config(VALUES["production"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger-collector.observability:4317"


def test_default_values_create_the_secret_with_a_page_token_key():
    (secret,) = [doc for doc in render({}) if doc["kind"] == "Secret"]
    assert len(secret["stringData"]["WIZDATA_PAGE_TOKEN_KEY"]) == 48
    assert "DATABASE_URL" not in secret["stringData"], "no database URL given: pods fall back to SQLite"


def test_every_role_has_a_headless_service_and_is_called_through_it():
    documents = render({})
    services = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Service"}
    (config_map,) = [doc for doc in documents if doc["kind"] == "ConfigMap"]
    for role in ROLES:
        ordinary, headless = services[f"wizdata-{role}"], services[f"wizdata-{role}-pods"]
        assert headless["spec"]["clusterIP"] == "None", "one DNS record per ready pod"
        assert headless["spec"]["selector"] == ordinary["spec"]["selector"]
        assert "clusterIP" not in ordinary["spec"], "the outside keeps its ordinary Service"
    config = config_map["data"]
    assert config["WIZDATA_REGISTRY_URL"] == "http://wizdata-registry-pods:50051"
    assert config["WIZDATA_MARKET_DATA_URL"] == "http://wizdata-market-data-pods:50051"
    assert config["WIZDATA_AUTH_URL"] == "http://wizdata-auth-pods:50051"
    assert all(f"{role}=http://wizdata-{role}-pods:50051" in config["WIZDATA_GATEWAY_BACKENDS"]
               for role in ROLES - {"gateway"})
    assert config["WIZDATA_DNS_REFRESH_INTERVAL"] == "5s"


MONITORING = {"monitoring": {"prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
                             "grafanaDashboards": {"enabled": True}}}


def test_alert_rules_and_dashboards_are_off_by_default():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in render({})}
    assert not any(kind == "PrometheusRule" for kind, _ in kinds)
    assert ("ConfigMap", "wizdata-dashboards") not in kinds


def test_the_prometheus_rule_carries_the_rules_file_and_promtool_accepts_it(tmp_path):
    (rule,) = [doc for doc in render(MONITORING) if doc["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus", "a ruleSelector's labels go on it"
    rules_file = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == rules_file, "the same rules as the plain rules file"
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            assert alert.get("for") and alert["annotations"]["runbook"], alert["alert"]
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(["promtool", "check", "rules", str(rendered)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS: 9 rules found" in checked.stdout, checked.stdout + checked.stderr


def test_the_dashboards_config_map_validates_and_carries_every_dashboard(tmp_path):
    (dashboards,) = [doc for doc in render(MONITORING)
                     if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wizdata-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1", "the sidecar's label"
    assert set(dashboards["data"]) == {"wizdata-mesh.json"}
    dashboard = json.loads(dashboards["data"]["wizdata-mesh.json"])
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for topic in ("Calls per second", "Errors", "p99 latency", "Rate-limit decisions", "Retries", "Breakers",
                  "Connections and subscriptions", "Events", "Ticks", "Candles written", "Cache hit ratio",
                  "Database pool"):
        assert topic in titles, topic
    path = tmp_path / "dashboards.yaml"
    path.write_text(yaml.safe_dump(dashboards))
    validated = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--kubernetes-version", KUBE_VERSION,
         str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
