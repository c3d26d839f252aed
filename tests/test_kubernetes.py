"""The Kubernetes manifests (deploy/kubernetes/), rendered by kustomize and held against the
Kubernetes schemas, KEDA's CRDs and the code.

Each kustomization is rendered with ``kubectl kustomize`` (offline, no cluster). Every object
must pass the Kubernetes schema, strictly (an unknown field is an error), and KEDA's objects
their CRD's schema. The commands, probes, variables, queue name, upstream URLs and network
paths the manifests name must be the ones the processes have. The tests skip, saying so,
only where kubectl cannot be had.
"""

from __future__ import annotations

import base64
import functools
import importlib
import ipaddress
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from common.health import HEALTH_PATHS
from common.settings import ServiceSettings
from message_service.persistence.queued import QUEUE_NAME
from message_service.persistence.rq_layout import queue_key
from stack.servers import REDIS_PERSISTENCE
from tests.deployment import DEV_ONLY_HOSTS, dev_only, env_names, option, runnable_problem
from worker.config import Settings as WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
KEDA_CRDS = Path(__file__).resolve().parent / "data" / "keda"
RENDERS = {"base": "base", "production": "overlays/production", "dev": "overlays/dev"}
OVERLAYS = ["production", "dev"]
# The oldest Kubernetes the manifests are written for (the preStop sleep action is on by
# default from 1.30) and the newest whose schemas kubernetes-validate has.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
# Each probe of an HTTP process: it takes traffic once every dependency has answered, then
# stays in its Service while the process answers (see deploy/kubernetes/README.md).
HTTP_PROBES = {"startupProbe": "/readyz", "readinessProbe": "/healthz", "livenessProbe": "/healthz"}
# What a migration's settings need: the switch, the secrets production insists on, its URL.
MIGRATION_FIELDS = {"environment", "internal_token", "jwt_secret", "database_url"}
# A job may run its whole timeout after SIGTERM; the pod needs time to stop after that.
JOB_STOP_MARGIN_SECONDS = 10


# --- rendering ----------------------------------------------------------------------------


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """Every object ``kubectl kustomize`` makes of one kustomization. The dev overlay is
    rendered from a copy, with the secrets its make-secrets script writes."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on PATH to render the kustomizations (apt-get install kubectl)")
    with tempfile.TemporaryDirectory(prefix="anonchat-k8s-") as scratch:
        tree = Path(scratch) / "kubernetes"
        shutil.copytree(KUBERNETES, tree, ignore=shutil.ignore_patterns("secrets.env"))
        directory = tree / RENDERS[name]
        if (directory / "make-secrets").is_file():
            subprocess.run([str(directory / "make-secrets")], check=True, capture_output=True)
        result = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
        )
    assert result.returncode == 0, result.stderr
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def objects(name: str, kind: str) -> list[dict[str, Any]]:
    """The objects of one kind in a render."""
    return [obj for obj in render(name) if obj["kind"] == kind]


def the(name: str, kind: str, object_name: str) -> dict[str, Any]:
    """The one object of that kind and name in a render."""
    found = [obj for obj in objects(name, kind) if obj["metadata"]["name"] == object_name]
    assert len(found) == 1, f"{name}: {len(found)} {kind} named {object_name}"
    return found[0]


def workloads(name: str) -> list[dict[str, Any]]:
    """The objects that run pods: Deployments, StatefulSets and Jobs."""
    return [obj for obj in render(name) if obj["kind"] in WORKLOAD_KINDS]


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod template."""
    template: dict[str, Any] = workload["spec"]["template"]
    return template


def is_anonchat(workload: dict[str, Any]) -> bool:
    """Whether the workload runs the anonchat image (not the dev overlay's Postgres or Redis)."""
    return bool(pod(workload)["metadata"]["labels"].get(NAME) == "anonchat")


def containers(name: str, *, long_running: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """(component, container) for every anonchat container; only those that stay up when
    ``long_running``."""
    for workload in workloads(name):
        if not is_anonchat(workload) or (long_running and workload["kind"] == "Job"):
            continue
        component = pod(workload)["metadata"]["labels"][COMPONENT]
        for container in pod(workload)["spec"]["containers"]:
            yield component, container


def http_containers(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The anonchat containers that serve HTTP (uvicorn)."""
    for component, container in containers(name):
        if container["command"][:3] == ["python", "-m", "uvicorn"]:
            yield component, container


def component_of(name: str, deployment: str) -> str:
    """The component label of a Deployment's pods."""
    labels = pod(the(name, "Deployment", deployment))["metadata"]["labels"]
    return str(labels[COMPONENT])


def package(args: list[str]) -> str:
    """The anonchat package a container's command runs."""
    if args[:3] == ["python", "-m", "uvicorn"]:
        return args[3].split(".")[0]
    if args[:2] == ["python", "-m"]:
        return args[2].split(".")[0]
    if args[:1] == ["alembic"]:
        return str(option(args, "-c")).split("/")[0]
    raise AssertionError(f"no anonchat package in {args!r}")


def settings_class(args: list[str]) -> type[BaseSettings]:
    """The settings class the process started by ``args`` reads its environment through."""
    cls: type[BaseSettings] = importlib.import_module(f"{package(args)}.config").Settings
    return cls


def read_variables(cls: type[BaseSettings]) -> dict[str, str]:
    """Every variable a settings class reads, with the field it sets."""
    return {
        variable: name
        for name, info in cls.model_fields.items()
        for variable in env_names(cls, name, info)
    }


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's variables by name."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_refs(name: str) -> Iterator[tuple[str, str, str]]:
    """(who, Secret name, key) for every reference to a Secret: variables and KEDA's."""
    for workload in workloads(name):
        for container in pod(workload)["spec"]["containers"]:
            for variable, entry in env(container).items():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield f"{container['name']}: {variable}", ref["name"], ref["key"]
    for auth in objects(name, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            yield f"{auth['metadata']['name']}: {ref['parameter']}", ref["name"], ref["key"]


def secret_data(name: str) -> dict[str, str]:
    """The decoded data of the render's one Secret."""
    (secret,) = objects(name, "Secret")
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def resolved_env(name: str, container: dict[str, Any]) -> dict[str, str]:
    """A container's variables as the process sees them, the Secret's values filled in."""
    data = secret_data(name)
    return {
        variable: str(entry["value"])
        if "value" in entry
        else data[entry["valueFrom"]["secretKeyRef"]["key"]]
        for variable, entry in env(container).items()
    }


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port of a container as a number (a probe or a Service may name it)."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``500m``, ``1``, ``128Mi``) as a number of cores or bytes."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    number, unit = match.groups()
    return float(number) * units.get(unit, 1)


def peak_rss_mib() -> dict[str, float]:
    """Each process's peak RSS in the README's benchmark table. Its "MB" are MiB
    (bench/measure.py divides VmHWM's KiB by 1024); the workers' highest counts."""
    text = (ROOT / "README.md").read_text()
    _, _, table = text.partition("\nPeak RSS")
    rows = re.findall(r"^\s+([a-z_]+)(?:\.\d+)?\s*\|\s*(\d+(?:\.\d+)?) MB", table, re.M)
    peaks: dict[str, float] = {}
    for process, mib in rows:
        peaks[process] = max(peaks.get(process, 0.0), float(mib))
    return peaks


def metrics_port() -> int:
    """ANONCHAT_METRICS_PORT's default: from the settings once they read it, else 9100."""
    info = ServiceSettings.model_fields.get("metrics_port")
    return int(info.default) if info is not None else 9100


# --- schemas ------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """An OpenAPI schema in which an object refuses fields it does not list, as the API
    server's strict field validation does (it keeps those it is told to preserve)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in copied
        and "additionalProperties" not in copied
        and not copied.get("x-kubernetes-preserve-unknown-fields")
    ):
        copied["additionalProperties"] = False
    return copied


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """A validator per (apiVersion, kind) of the vendored KEDA CRDs, for each version the
    CRD serves."""
    validators = {}
    for path in sorted(KEDA_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                validators[f"{group}/{version['name']}", kind] = jsonschema.Draft7Validator(schema)
    return validators


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """What the schema of the object's kind refuses in it: Kubernetes' own, or the CRD's."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    if obj["apiVersion"].startswith("keda.sh/"):
        validator = crd_validators().get((obj["apiVersion"], obj["kind"]))
        if validator is None:
            return [f"{where}: no vendored CRD serves {obj['apiVersion']}"]
        return [f"{where}: {error.message}" for error in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where} ({'.'.join(map(str, error.path))}): {error.message}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_object_passes_its_schema(name: str, version: str) -> None:
    errors = [error for obj in render(name) for error in schema_errors(obj, version)]
    assert not errors, "\n".join(errors)


def test_the_keda_crds_are_vendored() -> None:
    assert {kind for _, kind in crd_validators()} >= {"ScaledObject", "TriggerAuthentication"}


@pytest.mark.parametrize(
    ("kind", "object_name", "path"),
    [
        ("Deployment", "worker", ["spec", "template", "spec", "terminationGracePeriod"]),
        ("ScaledObject", "worker", ["spec", "maxReplicas"]),
        ("TriggerAuthentication", "worker-redis", ["spec", "secretRef"]),
    ],
)
def test_the_schemas_refuse_an_unknown_field(kind: str, object_name: str, path: list[str]) -> None:
    obj = yaml.safe_load(yaml.safe_dump(the("production", kind, object_name)))
    *parents, last = path
    target = obj
    for key in parents:
        target = target[key]
    target[last] = 1
    assert schema_errors(obj, KUBERNETES_VERSIONS[-1])


# --- commands, probes, variables ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_command_and_exec_probe_names_what_the_image_has(name: str) -> None:
    for component, container in containers(name):
        assert runnable_problem(container["command"]) is None, component
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            if command:
                assert runnable_problem(command) is None, f"{component} {probe}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_http_probe_asks_the_app_port_for_a_path_the_code_serves(name: str) -> None:
    for component, container in containers(name):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get:
                assert get["path"] in HEALTH_PATHS, f"{component} {probe}: {get['path']}"
    served = list(http_containers(name))
    assert {component for component, _ in served} == {"gateway", "user-service", "message-service"}
    for component, container in served:
        app_port = int(str(option(container["command"], "--port")))
        for probe, path in HTTP_PROBES.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{component} {probe}"
            assert container_port(container, get["port"]) == app_port, f"{component} {probe}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_a_worker_probes_itself_with_the_check_module(name: str) -> None:
    workers = [c for component, c in containers(name) if component == "worker"]
    assert workers
    for container in workers:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["python", "-m", "worker.check"]


@pytest.mark.parametrize("module", ["gateway.app", "user_service.app", "message_service.app"])
async def test_the_kubelet_gets_an_answer_from_each_probe(module: str) -> None:
    # The kubelet sends no internal token: each probed path must answer it (/readyz may
    # say 503: nothing is connected here), never 401 or 404.
    paths = {
        container[probe]["httpGet"]["path"]
        for _, container in http_containers("production")
        if container["command"][3] == f"{module}:create_app"
        for probe in HTTP_PROBES
    }
    assert paths
    settings = importlib.import_module(module.replace(".app", ".config")).Settings(_env_file=None)
    app = importlib.import_module(module).create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        for path in sorted(paths):
            answer = await client.get(path)
            assert answer.status_code in ({200} if path == "/healthz" else {200, 503}), path


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_variable_is_one_the_settings_read(name: str) -> None:
    for component, container in containers(name):
        unknown = set(env(container)) - set(read_variables(settings_class(container["command"])))
        assert not unknown, f"{component} sets variables nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_no_development_default_is_left(name: str) -> None:
    for workload in workloads(name):
        if not is_anonchat(workload):
            continue
        for container in pod(workload)["spec"]["containers"]:
            cls = settings_class(container["command"])
            needed = {
                field_name: env_names(cls, field_name, info)
                for field_name, info in cls.model_fields.items()
                if dev_only(field_name, info)
                and (workload["kind"] != "Job" or field_name in MIGRATION_FIELDS)
            }
            missing = {
                f: names for f, names in needed.items() if not set(names) & set(env(container))
            }
            assert not missing, f"{workload['metadata']['name']} keeps defaults for {missing}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_secrets_come_from_the_secret_and_the_rest_is_plain(name: str) -> None:
    for component, container in containers(name):
        cls = settings_class(container["command"])
        fields = read_variables(cls)
        for variable, entry in env(container).items():
            info = cls.model_fields[fields[variable]]
            secret = info.annotation is SecretStr or variable.endswith(
                ("_DATABASE_URL", "_REDIS_URL")
            )
            assert ("valueFrom" in entry) == secret, f"{component}: {variable}"
            if not secret:
                assert not any(host in entry["value"] for host in DEV_ONLY_HOSTS), variable
        assert env(container)["ANONCHAT_ENVIRONMENT"]["value"] == "production", component


@pytest.mark.parametrize("name", ["base", "production"])
def test_no_secret_value_is_in_the_base_or_production(name: str) -> None:
    assert not objects(name, "Secret")
    assert {secret for _, secret, _ in secret_refs(name)} == {"anonchat"}


def test_the_readme_shows_how_to_create_every_key_production_reads() -> None:
    readme = (KUBERNETES / "README.md").read_text()
    documented = set(re.findall(r"--from-literal=([a-z-]+)=", readme))
    assert documented == {key for _, _, key in secret_refs("production")}


def test_the_dev_secret_holds_every_key_and_no_other() -> None:
    (secret,) = objects("dev", "Secret")
    refs = list(secret_refs("dev"))
    assert {name for _, name, _ in refs} == {secret["metadata"]["name"]}
    assert {key for _, _, key in refs} == set(secret_data("dev"))


def test_the_dev_secrets_pass_the_production_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    for component, container in containers("dev"):
        cls = settings_class(container["command"])
        for variable in read_variables(cls):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in resolved_env("dev", container).items():
            monkeypatch.setenv(variable, value)
        settings = cls(_env_file=None)
        assert getattr(settings, "environment", None) == "production", component


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_each_upstream_url_reaches_the_service_it_names(name: str) -> None:
    for component, container in containers(name):
        fields = read_variables(settings_class(container["command"]))
        for variable, entry in env(container).items():
            if not fields[variable].endswith("_service_url"):
                continue
            url = urlsplit(entry["value"])
            service = the(name, "Service", str(url.hostname))
            (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
            backends = [
                c
                for w in workloads(name)
                if pod(w)["metadata"]["labels"].items() >= service["spec"]["selector"].items()
                for c in pod(w)["spec"]["containers"]
            ]
            assert len(backends) == 1, f"{component}: {variable}"
            (backend,) = backends
            wanted = fields[variable].removesuffix("_url")
            assert package(backend["command"]) == wanted, f"{component}: {variable}"
            served = int(str(option(backend["command"], "--port")))
            assert container_port(backend, port["targetPort"]) == served, f"{component}: {variable}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_each_service_selects_one_workload(name: str) -> None:
    for service in objects(name, "Service"):
        selector = service["spec"]["selector"]
        selected = [
            w for w in workloads(name) if pod(w)["metadata"]["labels"].items() >= selector.items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]


# --- resources, security, stopping --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_container_has_requests_and_a_memory_limit(name: str) -> None:
    for workload in workloads(name):
        for container in pod(workload)["spec"]["containers"]:
            resources = container["resources"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            for resource in ("cpu", "memory"):
                assert resource in resources["requests"], f"{where}: no {resource} request"
            assert quantity(resources["limits"]["memory"]) >= quantity(
                resources["requests"]["memory"]
            ), where
            if is_anonchat(workload):
                assert quantity(resources["limits"]["cpu"]) >= quantity(
                    resources["requests"]["cpu"]
                ), where


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_memory_requests_cover_the_measured_peak_rss(name: str) -> None:
    peaks = peak_rss_mib()
    assert set(peaks) >= {"gateway", "user_service", "message_service", "worker"}, (
        "the README's benchmark section has no Peak RSS table to size the pods by"
    )
    for component, container in containers(name, long_running=True):
        peak = peaks[package(container["command"])] * 2**20
        request = quantity(container["resources"]["requests"]["memory"])
        assert request >= peak, (
            f"{component}: requests {request / 2**20:.0f} MiB, peak {peak / 2**20:.0f}"
        )


def image_uid() -> int:
    """The numeric user the Dockerfile runs as."""
    match = re.search(r"^USER\s+(\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile names no numeric USER"
    return int(match.group(1))


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_pod_runs_restricted(name: str) -> None:
    (namespace,) = objects(name, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(name):
        spec = pod(workload)["spec"]
        where = workload["metadata"]["name"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, where
        if is_anonchat(workload):
            assert context["runAsUser"] == image_uid(), where
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_a_worker_has_longer_than_a_job_to_stop(name: str) -> None:
    """A job runs without renewing its heartbeat for at most the heartbeat's lifetime (a
    statement, the wait for the cursor lock included, is shorter): SIGTERM lets it finish."""
    worker_env = next(env(c) for component, c in containers(name) if component == "worker")
    configured = worker_env.get("WORKER_HEARTBEAT_TTL_SECONDS", {}).get("value")
    ttl = int(configured or WorkerSettings.model_fields["heartbeat_ttl_seconds"].default)
    grace = pod(the(name, "Deployment", "worker"))["spec"]["terminationGracePeriodSeconds"]
    assert grace >= ttl + JOB_STOP_MARGIN_SECONDS


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_process_serves_metrics_on_its_own_port(name: str) -> None:
    port = metrics_port()
    for component, container in containers(name, long_running=True):
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports.get("metrics") == port, component
        assert list(ports.values()).count(port) == 1, f"{component}: metrics share a port"
    for workload in workloads(name):
        if is_anonchat(workload) and workload["kind"] != "Job":
            annotations = pod(workload)["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/port"] == str(port)
            assert annotations["prometheus.io/path"] == "/metrics"
    for service in objects(name, "Service"):
        targets = {p["targetPort"] for p in service["spec"]["ports"]}
        assert not targets & {"metrics", port}, service["metadata"]["name"]


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_a_job_migrates_each_database(name: str) -> None:
    wanted = {
        ("alembic", "-c", str(ini.relative_to(ROOT)), "upgrade", "head")
        for ini in ROOT.glob("*/alembic.ini")
    }
    jobs = objects(name, "Job")
    assert {tuple(pod(job)["spec"]["containers"][0]["command"]) for job in jobs} == wanted
    for job in jobs:
        assert pod(job)["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["activeDeadlineSeconds"] > 0


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether kubectl's ``-l`` selector (``k=v``, ``k!=v``, ``k in (..)``, ``k notin (..)``)
    matches a set of labels."""
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        match = re.fullmatch(r"\s*([\w./-]+)\s*(=|!=|in|notin)\s*\(?([^)]*)\)?\s*", term)
        assert match, f"cannot read the selector term {term!r}"
        key, operator, values = match.group(1), match.group(2), match.group(3).split(",")
        present = labels.get(key) in {value.strip() for value in values}
        if present != (operator in ("=", "in")):
            return False
    return True


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_first_step_of_a_rollout_applies_the_jobs_and_what_they_need(name: str) -> None:
    readme = (KUBERNETES / "README.md").read_text()
    steps = re.findall(rf"kubectl apply -k overlays/{name} -l '([^']+)'", readme)
    assert len(steps) == 1, f"the README shows no first step for {name}"
    first = [
        obj for obj in render(name) if selector_matches(steps[0], obj["metadata"].get("labels", {}))
    ]
    kinds = {obj["kind"] for obj in first}
    assert "Deployment" not in kinds, "the first step would start new code before its schema"
    assert {obj["metadata"]["name"] for obj in first if obj["kind"] == "Job"} == {
        job["metadata"]["name"] for job in objects(name, "Job")
    }
    needed = {"Namespace", "NetworkPolicy"} | (
        {"Secret", "StatefulSet"} if name == "dev" else set()
    )
    assert needed <= kinds


# --- scaling and disruption ---------------------------------------------------------------


def autoscaled(name: str) -> dict[str, str]:
    """Deployment name -> what scales it (HorizontalPodAutoscaler or ScaledObject)."""
    scaled: dict[str, str] = {}
    for hpa in objects(name, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] not in scaled
        scaled[target["name"]] = "HorizontalPodAutoscaler"
    for scaled_object in objects(name, "ScaledObject"):
        target = scaled_object["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] not in scaled
        scaled[target["name"]] = "ScaledObject"
    return scaled


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_deployment_is_scaled_by_one_autoscaler_that_owns_its_count(name: str) -> None:
    scaled = autoscaled(name)
    by_component = {component_of(name, deployment): kind for deployment, kind in scaled.items()}
    assert by_component == {
        "gateway": "HorizontalPodAutoscaler",
        "user-service": "HorizontalPodAutoscaler",
        "message-service": "HorizontalPodAutoscaler",
        "worker": "ScaledObject",
    }
    for deployment in objects(name, "Deployment"):
        assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]
    for hpa in objects(name, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
        assert [m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"] == [
            "cpu"
        ]


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_the_keda_trigger_counts_the_queue_the_workers_take_jobs_from(name: str) -> None:
    (scaled,) = objects(name, "ScaledObject")
    target = the(name, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert pod(target)["spec"]["containers"][0]["command"] == ["python", "-m", "worker"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == queue_key(QUEUE_NAME)
    assert int(trigger["metadata"]["listLength"]) >= 1
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    auth = the(name, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    assert parameters == {"address", "password"}


def test_the_keda_trigger_reaches_the_redis_the_workers_use() -> None:
    (scaled,) = objects("dev", "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    data = secret_data("dev")
    auth = the("dev", "TriggerAuthentication", trigger["authenticationRef"]["name"])
    given = {ref["parameter"]: data[ref["key"]] for ref in auth["spec"]["secretTargetRef"]}
    (worker,) = [c for component, c in containers("dev") if component == "worker"]
    url = urlsplit(resolved_env("dev", worker)["WORKER_REDIS_URL"])
    assert given["address"] == f"{url.hostname}:{url.port}"
    assert given["password"] == (url.password or "")
    assert trigger["metadata"]["databaseIndex"] == (url.path.strip("/") or "0")


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_deployment_has_a_disruption_budget_that_lets_a_drain_through(name: str) -> None:
    budgets = objects(name, "PodDisruptionBudget")
    for deployment in objects(name, "Deployment"):
        labels = pod(deployment)["metadata"]["labels"]
        covering = [
            b for b in budgets if labels.items() >= b["spec"]["selector"]["matchLabels"].items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["maxUnavailable"] >= 1


# --- network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod of the render, a pod in another namespace, or an
    address outside the cluster (no namespace)."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    address: str = "203.0.113.7"


INTERNET = Endpoint("the internet")
OTHER_NAMESPACE = Endpoint("a pod in default", "default", {"app": "other"})
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
KEDA = Endpoint("keda-operator", "keda", {"app": "keda-operator"})
KUBE_DNS = Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53})


def pods(name: str) -> list[Endpoint]:
    """A pod of each workload of the render, with its labels and named ports."""
    return [
        Endpoint(
            name=w["metadata"]["name"],
            namespace=w["metadata"]["namespace"],
            labels=pod(w)["metadata"]["labels"],
            ports={
                p["name"]: p["containerPort"]
                for c in pod(w)["spec"]["containers"]
                for p in c.get("ports", [])
            },
        )
        for w in workloads(name)
    ]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches a set of labels (an empty one matches all)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, values = expression["key"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[expression["operator"]]
        if not matched:
            return False
    return True


def peer_matches(peer: Mapping[str, Any], namespace: str, endpoint: Endpoint) -> bool:
    """Whether a policy's peer (in ``namespace``) stands for ``endpoint``."""
    if "ipBlock" in peer:
        if endpoint.namespace is not None:
            return False
        address = ipaddress.ip_address(endpoint.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": endpoint.namespace}
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif endpoint.namespace != namespace:
        return False
    return selects(peer.get("podSelector", {}), endpoint.labels)


def port_matches(
    ports: list[Mapping[str, Any]], target: Endpoint, port: int, protocol: str
) -> bool:
    """Whether a rule's ports take ``port`` on ``target`` (a named port is the target's)."""
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        value = entry.get("port")
        if value is None or (target.ports.get(value) if isinstance(value, str) else value) == port:
            return True
    return False


def admits(
    name: str,
    direction: str,
    holder: Endpoint,
    peer: Endpoint,
    target: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    """Whether the policies that hold ``holder`` in ``direction`` let the connection
    through; a pod no policy holds that way, or one outside the render, is not isolated."""
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    holding = [
        policy
        for policy in objects(name, "NetworkPolicy")
        if policy["metadata"]["namespace"] == holder.namespace
        and selects(policy["spec"]["podSelector"], holder.labels)
        and direction in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not holding:
        return True
    return any(
        (
            peers_key not in rule
            or any(peer_matches(p, policy["metadata"]["namespace"], peer) for p in rule[peers_key])
        )
        and port_matches(rule.get("ports", []), target, port, protocol)
        for policy in holding
        for rule in policy["spec"].get(rules_key, [])
    )


def allowed(
    name: str, source: Endpoint, target: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether ``source`` may open a connection to ``target``'s ``port``."""
    return admits(name, "Egress", source, target, target, port, protocol) and admits(
        name, "Ingress", target, source, target, port, protocol
    )


def role(endpoint: Endpoint) -> str:
    """A pod's component, or its name for the dev overlay's Postgres and Redis."""
    return endpoint.labels.get(COMPONENT) or endpoint.labels[NAME]


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_from_outside_only_the_gateway_api_port_answers(name: str) -> None:
    for outsider in (INTERNET, OTHER_NAMESPACE, KEDA):
        reached = {
            (role(p), port_name)
            for p in pods(name)
            for port_name, port in p.ports.items()
            if allowed(name, outsider, p, port)
        }
        expected = {("gateway", "http")} | (
            {("redis", "redis")} if outsider is KEDA and name == "dev" else set()
        )
        assert reached == expected, outsider.name


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_prometheus_reaches_the_metrics_ports_and_nothing_else(name: str) -> None:
    for p in pods(name):
        for port_name, port in p.ports.items():
            wanted = port_name == "metrics" or (role(p), port_name) == ("gateway", "http")
            assert allowed(name, PROMETHEUS, p, port) == wanted, f"{role(p)}:{port_name}"


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_only_the_gateway_and_the_services_calls_reach_the_services(name: str) -> None:
    """The gateway reaches both services; message_service asks user_service about
    receivers, user_service asks message_service to erase an erased account's messages."""
    anonchat = [p for p in pods(name) if p.labels[NAME] == "anonchat"]
    reached = {
        (role(source), role(target), port_name)
        for source in anonchat
        for target in anonchat
        for port_name, port in target.ports.items()
        if allowed(name, source, target, port)
    }
    assert reached == {
        ("gateway", "user-service", "http"),
        ("gateway", "message-service", "http"),
        ("message-service", "user-service", "http"),
        ("user-service", "message-service", "http"),
    }


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_pod_can_resolve_names(name: str) -> None:
    for p in pods(name):
        assert allowed(name, p, KUBE_DNS, 53, "UDP"), role(p)


def users_of(name: str, suffix: str) -> set[str]:
    """The anonchat components given a URL of that kind (``_DATABASE_URL``, ``_REDIS_URL``)."""
    return {
        component
        for component, container in containers(name)
        if any(variable.endswith(suffix) for variable in env(container))
    }


# Each data store: its name (the dev pod's, and its egress policy's prefix), the suffix of
# the variables that point at it, its port.
STORES = [("postgres", "_DATABASE_URL", 5432), ("redis", "_REDIS_URL", 6379)]


@pytest.mark.parametrize(("server", "suffix", "port"), STORES)
def test_in_the_dev_cluster_only_their_users_reach_postgres_and_redis(
    server: str, suffix: str, port: int
) -> None:
    (target,) = [p for p in pods("dev") if p.labels[NAME] == server]
    reached = {role(p) for p in pods("dev") if allowed("dev", p, target, port)}
    assert reached == users_of("dev", suffix)
    assert not allowed("dev", INTERNET, target, port)
    assert not allowed("dev", OTHER_NAMESPACE, target, port)


@pytest.mark.parametrize(("server", "suffix", "port"), STORES)
def test_in_production_only_their_users_reach_the_managed_services(
    server: str, suffix: str, port: int
) -> None:
    policy = f"{server}-egress"
    (rule,) = the("production", "NetworkPolicy", policy)["spec"]["egress"]
    assert rule["to"], f"{policy} names no address: every address would be reached"
    assert all("ipBlock" in peer for peer in rule["to"]), "a managed service is named by addresses"
    for cidr in [peer["ipBlock"]["cidr"] for peer in rule["to"]]:
        inside = Endpoint("managed", address=str(next(ipaddress.ip_network(cidr).hosts())))
        reached = {role(p) for p in pods("production") if allowed("production", p, inside, port)}
        assert reached == users_of("production", suffix)
    elsewhere = Endpoint("elsewhere", address="203.0.113.7")
    assert not any(allowed("production", p, elsewhere, port) for p in pods("production"))


# --- the dev overlay's Postgres and Redis -------------------------------------------------


def test_the_dev_postgres_creates_the_databases_the_urls_name() -> None:
    init_sql = (KUBERNETES / "overlays" / "dev" / "postgres-init.sql").read_text()
    assert init_sql == (ROOT / "deploy" / "postgres" / "init.sql").read_text()
    (postgres,) = [w for w in workloads("dev") if w["metadata"]["name"] == "postgres"]
    variables = env(pod(postgres)["spec"]["containers"][0])
    created = {variables["POSTGRES_DB"]["value"]} | set(
        re.findall(r"CREATE DATABASE (\w+)", init_sql, re.I)
    )
    urls = [value for key, value in secret_data("dev").items() if key.endswith("database-url")]
    assert urls
    assert {urlsplit(url).path.strip("/") for url in urls} <= created
    password = variables["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
    assert {urlsplit(url).password for url in urls} == {secret_data("dev")[password]}


def test_the_dev_redis_persists_as_compose_and_the_local_one_do() -> None:
    (redis,) = [w for w in workloads("dev") if w["metadata"]["name"] == "redis"]
    args = pod(redis)["spec"]["containers"][0]["command"]
    for name in ("--appendonly", "--appendfsync"):
        assert option(args, name) == option(REDIS_PERSISTENCE, name)
