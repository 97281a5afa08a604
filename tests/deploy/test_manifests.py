"""The deployment files under deploy/ say what a user relies on: probes on the right paths
and port, pinned images, resources on every container, a GPU for vLLM, secrets kept out of
the manifests, and only GROUNDED_* variables that Grounded actually reads."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from grounded.settings import PostgresSettings, Settings, load_settings
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
SERVE_PORT = 8000

# Names the scaled setup relies on, accepted even where no Settings field declares them:
# GROUNDED_CONFIG is read by settings.py before Settings exists; GROUNDED_STORE_URL selects
# the PostgreSQL store and GROUNDED_STATE_URL the Redis state shared by the replicas.
KNOWN_NON_FIELD_VARIABLES = frozenset(
    {"GROUNDED_CONFIG", "GROUNDED_STORE_URL", "GROUNDED_STATE_URL"}
)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


# ---------------------------------------------------------------- helpers


def env_names(model: type[BaseModel], prefix: str = "GROUNDED_") -> Iterator[str]:
    """Every environment variable Settings reads: nested sections joined with `__`."""
    for name, field in model.model_fields.items():
        # A section is a model, or an optional model; a list of models (generate.models) is
        # one variable holding JSON.
        options = get_args(field.annotation) if is_union(field.annotation) else ()
        nested = [
            arg
            for arg in (field.annotation, *options)
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if nested:
            yield from env_names(nested[0], f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, UnionType)


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def compose() -> dict[str, Any]:
    (doc,) = load_all(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") != "Kustomization":
                objects.append(doc)
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    if kind == "Pod":
        return obj["spec"]  # type: ignore[no-any-return]
    return None


def containers() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(object, pod spec, container) for every container and init container."""
    found = []
    for obj in k8s_objects():
        spec = pod_spec(obj)
        if spec is None:
            continue
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            found.append((obj, spec, container))
    return found


def grounded_servers() -> list[dict[str, Any]]:
    servers = [
        c
        for _, _, c in containers()
        if c["image"].split(":")[0].endswith("grounded") and "serve" in c.get("command", [])
    ]
    assert servers, "no grounded serve container in deploy/kubernetes"
    return servers


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise AssertionError(f"{container['name']}: probe port {port!r} is not declared")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def without_interpolation(value: str) -> str:
    """Compose's ${VAR:?message} / ${VAR:-default} replaced by a placeholder."""
    return re.sub(r"\$\{[^}]*\}", "placeholder", value)


# ---------------------------------------------------------------- every file


def test_every_yaml_file_parses() -> None:
    files = yaml_files()
    assert COMPOSE in files and len(files) >= 5
    for path in files:
        docs = load_all(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(d, dict) for d in docs), path


def test_every_grounded_variable_is_a_real_setting() -> None:
    known = set(env_names(Settings)) | KNOWN_NON_FIELD_VARIABLES
    assert "GROUNDED_GENERATE__MODELS" in known and "GROUNDED_SERVE__PORT" in known
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / "docs" / "deploy.md"]
    used: dict[str, set[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"\bGROUNDED_[A-Z0-9_]*[A-Z0-9]", text):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert "GROUNDED_STORE_URL" in used and "GROUNDED_GENERATE__MODELS" in used
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert unknown == {}


# ---------------------------------------------------------------- images


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in {"", "latest"}


def test_every_image_is_pinned() -> None:
    for _, _, container in containers():
        assert image_is_pinned(container["image"]), container["image"]
    for name, service in compose()["services"].items():
        image = service["image"]
        if "build" in service:
            # Built here from deploy/Dockerfile: the local tag may float.
            assert image == "grounded:latest", name
        else:
            assert image_is_pinned(image), f"{name}: {image}"
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            assert image_is_pinned(line.split()[1]), line


def test_dockerfile_installs_cpu_torch_before_the_package() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    with (ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    (torch_pin,) = [d for d in dependencies if d.startswith("torch==")]
    cpu_torch = f"pip install {torch_pin} --index-url https://download.pytorch.org/whl/cpu"
    assert text.index(cpu_torch) < text.index("RUN pip install .")
    assert 'CMD ["grounded", "serve", "--host", "0.0.0.0", "--port", "8000"]' in text


# ---------------------------------------------------------------- kubernetes


def test_grounded_probes_hit_healthz_and_readyz_on_the_serving_port() -> None:
    for container in grounded_servers():
        port = int(option(container["command"], "--port"))
        assert port == SERVE_PORT
        liveness = container["livenessProbe"]["httpGet"]
        readiness = container["readinessProbe"]["httpGet"]
        assert liveness["path"] == "/healthz"
        assert readiness["path"] == "/readyz"
        assert resolve_port(container, liveness["port"]) == port
        assert resolve_port(container, readiness["port"]) == port
        if "startupProbe" in container:
            startup = container["startupProbe"]["httpGet"]
            assert startup["path"] == "/healthz"
            assert resolve_port(container, startup["port"]) == port


def test_every_container_has_requests_and_limits() -> None:
    for obj, _, container in containers():
        resources = container.get("resources", {})
        where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"


def test_vllm_gets_a_gpu_and_a_health_probe() -> None:
    workers = [c for _, _, c in containers() if c["image"].startswith("vllm/vllm-openai:")]
    assert workers
    for container in workers:
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        probe = container["readinessProbe"]["httpGet"]
        assert probe["path"] == "/health"
        assert resolve_port(container, probe["port"]) == int(option(container["args"], "--port"))


def test_grounded_deployment_replicas_autoscaler_and_migration_job() -> None:
    objects = k8s_objects()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    (deployment,) = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "grounded"]
    assert deployment["spec"]["replicas"] == 3
    (hpa,) = by_kind["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "grounded",
    }
    assert 3 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (job,) = by_kind["Job"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["grounded", "db", "migrate"]
    assert migrate["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    (postgres,) = by_kind["StatefulSet"]
    assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "pgvector/pgvector:"
    )
    assert postgres["spec"]["volumeClaimTemplates"], "PostgreSQL needs a persistent volume"
    assert {obj["kind"] for obj in objects} >= {"Namespace", "ConfigMap", "Secret", "Service"}


def test_every_service_selects_pods_and_named_ports() -> None:
    pods = [(obj, pod_spec(obj)) for obj in k8s_objects() if pod_spec(obj) is not None]
    services = [obj for obj in k8s_objects() if obj["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} >= {"grounded", "postgres", "redis", "vllm"}
    for service in services:
        selector = service["spec"]["selector"]
        matched = [
            spec
            for obj, spec in pods
            if selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matched, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for spec in matched:
                assert spec is not None
                declared = [p for c in spec["containers"] for p in c.get("ports", [])]
                assert any(target in (p.get("name"), p["containerPort"]) for p in declared)


def test_secrets_stay_out_of_the_manifests() -> None:
    secret_names = {"GROUNDED_STORE_URL", "POSTGRES_PASSWORD", "HF_TOKEN"}
    for _, _, container in containers():
        for entry in container.get("env", []):
            if entry["name"] in secret_names:
                assert "secretKeyRef" in entry.get("valueFrom", {}), entry["name"]
    for obj in k8s_objects():
        if obj["kind"] == "ConfigMap":
            assert not secret_names & set(obj["data"])
            assert "postgresql://" not in json.dumps(obj["data"])
    kustomization = load_all(KUBERNETES / "kustomization.yaml")[0]
    assert "secret.example.yaml" not in kustomization["resources"]
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")}
    assert listed == on_disk - {"kustomization.yaml", "secret.example.yaml"}


def max_connections(args: list[str]) -> int:
    (setting,) = [a for a in args if a.startswith("max_connections=")]
    return int(setting.partition("=")[2])


def test_postgres_accepts_every_replicas_connection_pool() -> None:
    pool = PostgresSettings().pool_max
    (hpa,) = [obj for obj in k8s_objects() if obj["kind"] == "HorizontalPodAutoscaler"]
    (postgres,) = [c for _, _, c in containers() if c["image"].startswith("pgvector/")]
    # The most replicas, the migration Job and a few sessions for psql and backups.
    needed = (hpa["spec"]["maxReplicas"] + 1) * pool + 10
    assert needed <= max_connections(postgres["args"])
    services = compose()["services"]
    needed = (services["grounded"]["deploy"]["replicas"] * 4 + 1) * pool + 10
    assert needed <= max_connections(services["postgres"]["command"]), "room for --scale 4x"


def test_urls_point_at_services_that_exist() -> None:
    services = {obj["metadata"]["name"] for obj in k8s_objects() if obj["kind"] == "Service"}
    (config,) = [obj for obj in k8s_objects() if obj["kind"] == "ConfigMap"]
    (secret,) = [obj for obj in k8s_objects() if obj["kind"] == "Secret"]
    urls = [
        config["data"]["GROUNDED_STATE_URL"],
        secret["stringData"]["store-url"],
        *(m["url"] for m in json.loads(config["data"]["GROUNDED_GENERATE__MODELS"])),
    ]
    for url in urls:
        assert urlsplit(url).hostname in services, url


# ---------------------------------------------------------------- compose


def test_compose_healthcheck_hits_healthz_and_readyz_on_the_serving_port() -> None:
    grounded = compose()["services"]["grounded"]
    command = grounded["command"]
    assert command == ["grounded", "serve", "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
    check = " ".join(grounded["healthcheck"]["test"])
    assert f"127.0.0.1:{SERVE_PORT}" in check
    assert "/healthz" in check and "/readyz" in check


def test_compose_runs_migrations_before_two_or_more_replicas() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["grounded", "db", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    grounded = services["grounded"]
    assert grounded["deploy"]["replicas"] >= 2
    assert grounded["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    assert services["postgres"]["image"] == "pgvector/pgvector:0.8.0-pg16"
    assert services["redis"]["image"].startswith("redis:7")
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert f"server grounded:{SERVE_PORT}" in nginx and "proxy_buffering off" in nginx


def test_compose_vllm_reserves_an_nvidia_gpu() -> None:
    vllm = compose()["services"]["vllm"]
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", vllm["image"])
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "/health" in " ".join(vllm["healthcheck"]["test"])


def test_compose_secrets_come_from_the_env_file() -> None:
    services = compose()["services"]
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD")
    url = services["grounded"]["environment"]["GROUNDED_STORE_URL"]
    assert url.startswith("postgresql://grounded:${POSTGRES_PASSWORD")
    assert url.endswith("@postgres:5432/grounded")
    assert services["grounded"]["environment"]["GROUNDED_STATE_URL"] == "redis://redis:6379/0"
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.MULTILINE)
    assert "deploy/.env" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- settings as deployed


def deployed_environments() -> list[tuple[str, dict[str, str], list[str]]]:
    """(where, GROUNDED_* environment, vLLM arguments) for compose and for Kubernetes."""
    services = compose()["services"]
    compose_env = {
        k: without_interpolation(str(v)) for k, v in services["grounded"]["environment"].items()
    }
    compose_vllm = services["vllm"]["command"]
    (config,) = [obj for obj in k8s_objects() if obj["kind"] == "ConfigMap"]
    (vllm,) = [c for _, _, c in containers() if c["image"].startswith("vllm/vllm-openai:")]
    return [
        ("compose", compose_env, [str(a) for a in compose_vllm]),
        ("kubernetes", {k: str(v) for k, v in config["data"].items()}, vllm["args"]),
    ]


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_deployed_settings_load_and_name_the_vllm_model(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (env, vllm_args) = next((e, a) for w, e, a in deployed_environments() if w == where)
    monkeypatch.chdir(tmp_path)  # no grounded.toml
    for name in [n for n in os.environ if n.startswith("GROUNDED_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.serve.port == SERVE_PORT and settings.serve.host == "0.0.0.0"
    models = {m.name: m for m in settings.generate.models}
    default = models[settings.generate.default_model]
    assert default.backend == "openai" and default.url is not None
    assert urlsplit(default.url).port == int(option(vllm_args, "--port"))
    assert default.upstream_model == option(vllm_args, "--served-model-name")
    assert default.context_window <= int(option(vllm_args, "--max-model-len"))


def test_healthcheck_command_is_valid_python() -> None:
    """The compose health checks run `python -c CODE`; CODE must at least compile."""
    for service in compose()["services"].values():
        test = service.get("healthcheck", {}).get("test", [])
        if len(test) >= 4 and test[0] == "CMD" and test[1].startswith("python"):
            compile(test[3], "healthcheck", "exec")
        elif test and test[0] == "CMD-SHELL":
            assert shlex.split(test[1])
