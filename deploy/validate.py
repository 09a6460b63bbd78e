"""Offline consistency checks of deploy/ against the code, run by .ci/validate-deploy.

    python deploy/validate.py CHECK [ARG]

CHECK is one of:
  settings           every SEGMENTS_* name used in deploy/ is a setting of worker/settings.py
  dockerfile         Dockerfile: base image, non-root user, HEALTHCHECK, CMD, COPY sources,
                     SEGMENTS_SQL_DIR, deploy/Dockerfile.dockerignore keeps what COPY needs
  compose            compose.yaml beyond its schema: dependencies, healthchecks, ports, mounts,
                     settings that parse, Prometheus targets
  promql-names       every metric and label in alerts.yml, its tests and the dashboard exists
                     (names from worker/metrics.py and api_shim/metrics.py, as exposed)
  dashboard OUT      the Grafana dashboard's structure and coverage; writes its PromQL as a
                     rules file OUT so that promtool can parse every expression
  runbooks           warn about alert runbook links to README sections that do not exist
  k8s BUILT          the kustomize output BUILT: Kubernetes schemas (kubernetes-validate,
                     bundled, offline), KEDA objects, probes, references between objects

Each check prints what it checked and exits 1 with the reasons when anything is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ("1.27.0", "1.37.0")  # oldest and newest schema sets bundled with the tool
KEDA_API = "keda.sh/v1alpha1"
# Names in deploy/ that start with SEGMENTS_ but are not Settings fields.
EXTRA_SEGMENTS_VARS = {"SEGMENTS_SQL_DIR"}  # read by worker/migrations.py directly
# rabbitmq_prometheus (RabbitMQ 3.13, /metrics/per-object): the queue metrics the rules and
# the dashboard use; their labels.
RABBITMQ_METRICS = {
    name: {"queue", "vhost"}
    for name in (
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_consumers",
        "rabbitmq_queue_messages_published_total",
    )
}
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip


class Problems:
    def __init__(self, title: str) -> None:
        self.title = title
        self.items: list[str] = []
        self.checked: list[str] = []

    def ok(self, what: str) -> None:
        if what not in self.checked:
            self.checked.append(what)

    def bad(self, what: str) -> None:
        self.items.append(what)

    def require(self, cond: object, what: str, why: object) -> None:
        if cond:
            self.ok(what)
        else:
            self.bad(f"{what}: {why}")

    def finish(self) -> int:
        print(f"{self.title}: {len(self.checked)} checks passed")
        for what in self.checked:
            print(f"  ok   {what}")
        for what in self.items:
            print(f"  FAIL {what}")
        return 1 if self.items else 0


# --- shared helpers -----------------------------------------------------------------------


def settings_env() -> dict[str, Any]:
    """SEGMENTS_* variable name -> field, from the one Settings class."""
    from worker.settings import Settings

    return {f"SEGMENTS_{name.upper()}": field for name, field in Settings.model_fields.items()}


def parse_settings(env: dict[str, str]) -> str | None:
    """None if these SEGMENTS_* values make valid Settings, else pydantic's message."""
    from pydantic import ValidationError

    from worker.settings import Settings

    fields = {k.removeprefix("SEGMENTS_").lower(): v for k, v in env.items()}
    known = {k: v for k, v in fields.items() if k in Settings.model_fields}
    try:
        Settings.model_validate(known)
    except ValidationError as exc:
        return str(exc).replace("\n", " ")
    return None


def exposed_metrics() -> dict[str, set[str]]:
    """Every sample name the service exposes -> its label names (from the metric objects)."""
    import prometheus_client

    import api_shim.metrics
    import worker.metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names: dict[str, set[str]] = {}
    for module in (worker.metrics, api_shim.metrics):
        for obj in vars(module).values():
            if not isinstance(obj, prometheus_client.metrics.MetricWrapperBase):
                continue
            labels = set(obj._labelnames)
            for suffix in suffixes[obj._type]:
                names[obj._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def known_metrics() -> dict[str, set[str]]:
    return {**exposed_metrics(), **RABBITMQ_METRICS, "up": set()}


_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)\b(?!\s*\()")


def promql_refs(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> label names matched on it, label names in by/on/... clauses)."""
    metrics: dict[str, set[str]] = {}
    for name, body in _SELECTOR.findall(expr):
        if name:
            metrics.setdefault(name, set()).update(_MATCHER.findall(body))
    rest = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", expr)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(rest):
        grouping.update(label.strip() for label in labels.split(",") if label.strip())
    rest = _GROUPING.sub(" ", rest)
    for name in _IDENT.findall(rest):
        if name.lower() not in PROMQL_WORDS:
            metrics.setdefault(name, set())
    return metrics, grouping


def check_expr(expr: str, where: str, known: dict[str, set[str]], problems: Problems) -> None:
    metrics, grouping = promql_refs(expr)
    if not metrics:
        problems.bad(f"{where}: no metric found in {expr!r}")
        return
    available = set(TARGET_LABELS)
    for name, matched in metrics.items():
        if name not in known:
            problems.bad(f"{where}: unknown metric {name}")
            continue
        available |= known[name]
        unknown = matched - known[name] - TARGET_LABELS
        if unknown:
            problems.bad(f"{where}: {name} has no label {sorted(unknown)}")
    missing = grouping - available
    if missing:
        problems.bad(f"{where}: grouping by labels no metric has: {sorted(missing)}")
    problems.ok(f"{where}: {', '.join(sorted(metrics))}")


def load_yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def grafana_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL with Grafana's interval variables replaced) for every panel target."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            for var in ("$__rate_interval", "$__interval", "$__range"):
                expr = expr.replace(var, "5m")
            yield f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}", expr


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * units[unit]
    return total


# --- settings -----------------------------------------------------------------------------


def check_settings(_: list[str]) -> int:
    problems = Problems("SEGMENTS_ names in deploy/ are settings")
    valid = set(settings_env()) | EXTRA_SEGMENTS_VARS
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.name != "validate.py"]
    for path in sorted(files):
        used = set(re.findall(r"\bSEGMENTS_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
        unknown = used - valid
        problems.require(
            not unknown, f"{path.relative_to(ROOT)} ({len(used)} names)", f"{sorted(unknown)}"
        )
    return problems.finish()


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def check_dockerfile(_: list[str]) -> int:
    problems = Problems("deploy/Dockerfile")
    steps = dockerfile_instructions(DEPLOY / "Dockerfile")
    args = dict(re.findall(r"^(\w+)=(\S+)$", "\n".join(v for k, v in steps if k == "ARG"), re.M))
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), v) for k, v in steps
             if k == "FROM"]  # fmt: skip
    problems.require(
        len(bases) >= 2 and all(b.startswith("python:3.11-slim") for b in bases),
        "multi-stage, every stage on python:3.11-slim",
        f"FROM {bases}",
    )
    users = [v for k, v in steps if k == "USER"]
    problems.require(
        users and users[-1].split(":")[0] not in {"0", "root"}, "runs as a non-root user", users
    )
    problems.require(any(k == "HEALTHCHECK" for k, _ in steps), "has a HEALTHCHECK", "none")
    cmd = [json.loads(v) for k, v in steps if k == "CMD"]
    problems.require(cmd and cmd[-1] == ["segments", "api"], "CMD is segments api", cmd)
    env = " ".join(v for k, v in steps if k == "ENV")
    for name in ("SEGMENTS_API_HOST", "SEGMENTS_WORKER_METRICS_HOST"):
        problems.require(f"{name}=0.0.0.0" in env, f"{name}=0.0.0.0", "not set")
    copies = [v.split() for k, v in steps if k == "COPY" and not v.startswith("--from")]
    sql_dir = re.search(r"SEGMENTS_SQL_DIR=(\S+)", env)
    sql_dest = [c[-1].rstrip("/") for c in copies if c[0].rstrip("/") == "sql"]
    problems.require(
        sql_dir and sql_dest and sql_dir.group(1) == sql_dest[0],
        "SEGMENTS_SQL_DIR is where sql/ is copied",
        f"{sql_dir and sql_dir.group(1)} vs {sql_dest}",
    )
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for copy in copies:
        for src in copy[:-1]:
            path = ROOT / src
            problems.require(path.exists(), f"COPY source {src} exists", "missing")
            problems.require(
                f"!{src}" in ignore or f"!{src.rstrip('/')}" in ignore,
                f"COPY source {src} is let through Dockerfile.dockerignore",
                "excluded from the build context",
            )
    return problems.finish()


# --- compose ------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def resolve(value: object) -> str:
    """A compose value with ${VAR:-default} replaced by its default (the file's own value)."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def check_compose(_: list[str]) -> int:
    problems = Problems("deploy/compose.yaml beyond the schema")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    for name in ("postgres", "rabbitmq", "migrate", "api", "worker", "prometheus", "grafana"):
        problems.require(name in services, f"service {name}", "missing")
    problems.require(
        services["postgres"]["image"].startswith("postgres:15"), "PostgreSQL 15", "other"
    )
    problems.require(
        services["rabbitmq"]["image"].startswith("rabbitmq:3.13-management"),
        "RabbitMQ 3.13 with management",
        "other",
    )
    replicas = services["worker"].get("deploy", {}).get("replicas", 1)
    problems.require(replicas >= 2, "two or more workers", f"replicas {replicas}")
    for name, service in services.items():
        check_compose_service(name, service, services, problems)
    check_prometheus_targets(services, problems)
    return problems.finish()


def check_compose_service(
    name: str, service: dict[str, Any], services: dict[str, Any], problems: Problems
) -> None:
    for dep, spec in service.get("depends_on", {}).items():
        condition = spec.get("condition") if isinstance(spec, dict) else "service_started"
        target = services.get(dep, {})
        if condition == "service_healthy":
            hc = target.get("healthcheck", {})
            problems.require(
                hc.get("test") and not hc.get("disable"),
                f"{name} waits for {dep} healthy: {dep} has a healthcheck",
                "none",
            )
        elif condition == "service_completed_successfully":
            problems.require(
                target.get("restart") == "no",
                f"{name} waits for {dep} to complete: {dep} is one-shot",
                "restarts",
            )
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            problems.require(
                (DEPLOY / source).exists(), f"{name} mounts {source}", "no such file or directory"
            )
    env = {k: resolve(v) for k, v in service.get("environment", {}).items()}
    segments_env = {k: v for k, v in env.items() if k.startswith("SEGMENTS_")}
    if segments_env:
        error = parse_settings(segments_env)
        problems.require(error is None, f"{name}: SEGMENTS_ settings parse", error)
        check_compose_ports(name, service, segments_env, problems)


def check_compose_ports(
    name: str, service: dict[str, Any], env: dict[str, str], problems: Problems
) -> None:
    command = service.get("command", [])
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    if command[-1:] == ["api"]:
        port = env.get("SEGMENTS_API_PORT", "8000")
        problems.require(
            f":{port}/healthz" in test, f"{name} healthcheck hits :{port}/healthz", test
        )
    if command[-1:] == ["worker"]:
        port = env.get("SEGMENTS_WORKER_METRICS_PORT", "9100")
        problems.require(
            f":{port}/metrics" in test, f"{name} healthcheck hits :{port}/metrics", test
        )
        grace = float(env.get("SEGMENTS_SHUTDOWN_GRACE_S", "30"))
        stop = duration_s(service.get("stop_grace_period", "10s"))
        problems.require(
            stop > grace, f"{name} stop_grace_period {stop:g}s > shutdown grace {grace:g}s", "no"
        )


def check_prometheus_targets(services: dict[str, Any], problems: Problems) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        found = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        for sd in job.get("dns_sd_configs", []):
            found |= {f"{n}:{sd['port']}" for n in sd["names"]}
        targets[job["job_name"]] = found
    env = {k: resolve(v) for k, v in services["api"].get("environment", {}).items()}
    api_port = env.get("SEGMENTS_API_PORT", "8000")
    worker_port = env.get("SEGMENTS_WORKER_METRICS_PORT", "9100")
    wanted = {f"api:{api_port}", f"worker:{worker_port}", "rabbitmq:15692"}
    scraped = set().union(*targets.values())
    problems.require(wanted <= scraped, f"Prometheus scrapes {sorted(wanted)}", sorted(scraped))
    for target in scraped:
        host = target.split(":")[0]
        problems.require(
            host in services or host in {"127.0.0.1", "localhost"},
            f"scrape target {target} is a compose service",
            "unknown host",
        )
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    problems.require("rabbitmq_prometheus" in plugins, "rabbitmq_prometheus enabled", plugins)


# --- PromQL names -------------------------------------------------------------------------


def check_promql_names(_: list[str]) -> int:
    problems = Problems("metric and label names in PromQL exist")
    known = known_metrics()
    print(f"known metrics: {len(known)} ({len(exposed_metrics())} exposed by segments)")
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            check_expr(rule["expr"], f"alert {rule.get('alert')}", known, problems)
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    for test in tests["tests"]:
        for series in test["input_series"]:
            check_expr(series["series"], f"test series {series['series']}", known, problems)
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "segments.json").read_text())
    for where, expr in grafana_exprs(dashboard):
        check_expr(expr, where, known, problems)
    return problems.finish()


# --- Grafana dashboard --------------------------------------------------------------------


def _quantiles(metric: str, *quantiles: str) -> list[str]:
    return [rf"histogram_quantile\({re.escape(q)}, [^\n]*{metric}" for q in quantiles]


# What the dashboard must show (issue 6): every regex must match one of its queries.
DASHBOARD_MUST_SHOW = {
    "build latency p50/p95/p99": _quantiles(
        "segments_build_duration_seconds_bucket", "0.5", "0.95", "0.99"
    ),
    "builds by outcome": [r"by \(outcome\) \(rate\(segments_build_duration_seconds_count"],
    "queue depth": [r"rabbitmq_queue_messages_ready"],
    "queue age": [r"segments_build_start_delay_seconds_bucket"],
    "change lag p50/p99": _quantiles("segments_change_lag_seconds_bucket", "0.5", "0.99"),
    "segments evaluated and skipped by change hints": [
        r"by \(decision\) \(rate\(segments_change_batch_segments_sum"
    ],
    "rebuild checks by result": [r"by \(result\) \(rate\(segments_rebuild_checks_total"],
    "analyses of segment_members before change batches": [
        r"increase\(segments_member_statistics_analyses_total"
    ],
    "dead-lettered messages": [r'segments_messages_total\{outcome="dead_lettered"\}'],
    "DLQ depth": [r"rabbitmq_queue_messages\{[^}]*dlq"],
    "outbox backlog": [r"segments_outbox_backlog"],
    "membership changes": [r"segments_membership_outbox_backlog", r"segments_change_log_rows"],
    "API latency": _quantiles("segments_http_request_duration_seconds_bucket", "0.5", "0.99"),
    "API errors": [r'segments_http_request_duration_seconds_count\{status=~"5'],
}


def check_dashboard(argv: list[str]) -> int:
    problems = Problems("deploy/grafana/dashboards/segments.json")
    path = DEPLOY / "grafana" / "dashboards" / "segments.json"
    dashboard = json.loads(path.read_text())
    problems.ok("valid JSON")
    for key in ("uid", "title", "panels", "schemaVersion"):
        problems.require(key in dashboard, f"has {key}", "missing")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    problems.require(
        variables.get("datasource", {}).get("query") == "prometheus",
        "datasource variable of type prometheus",
        "missing",
    )
    check_panels(list(all_panels(dashboard)), problems)
    exprs = list(grafana_exprs(dashboard))
    text = "\n".join(expr for _, expr in exprs)
    for what, patterns in DASHBOARD_MUST_SHOW.items():
        missing = [p for p in patterns if not re.search(p, text)]
        problems.require(not missing, f"shows {what}", f"no query matches {missing}")
    rules = [{"record": f"dashboard:panel_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]
    Path(argv[0]).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    print(f"wrote {len(rules)} panel queries to {argv[0]} for promtool")
    check_provisioning(dashboard, problems)
    return problems.finish()


def check_panels(panels: list[dict[str, Any]], problems: Problems) -> None:
    ids = [p.get("id") for p in panels]
    problems.require(len(ids) == len(set(ids)), f"{len(ids)} panel ids unique", ids)
    cells: dict[tuple[int, int], Any] = {}
    for panel in panels:
        pos = panel.get("gridPos", {})
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not {"h", "w", "x", "y"} <= pos.keys() or pos["x"] + pos["w"] > 24:
            problems.bad(f"{name}: gridPos {pos}")
            continue
        for cell in ((x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                     for y in range(pos["y"], pos["y"] + pos["h"])):  # fmt: skip
            if cell in cells:
                problems.bad(f"{name} overlaps panel {cells[cell]}")
                break
            cells[cell] = panel.get("id")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        refs = [t.get("refId") for t in targets]
        problems.require(
            targets and all(t.get("expr") for t in targets) and len(refs) == len(set(refs)),
            f"{name}: {len(targets)} queries",
            "no query, an empty one, or repeated refIds",
        )
        problems.require(
            panel.get("datasource", {}).get("uid") == "${datasource}",
            f"{name}: data source variable",
            panel.get("datasource"),
        )


def check_provisioning(dashboard: dict[str, Any], problems: Problems) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    prov = DEPLOY / "grafana" / "provisioning"
    providers = yaml.safe_load((prov / "dashboards" / "segments.yml").read_text())["providers"]
    for provider in providers:
        path = provider["options"]["path"]
        source = {target: src for src, target in mounts.items()}.get(path)
        problems.require(
            source and (DEPLOY / source / "segments.json").exists(),
            f"dashboard provider path {path} is mounted from deploy/grafana/dashboards",
            f"mounts {mounts}",
        )
    sources = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    urls = [d["url"] for d in sources["datasources"] if d["type"] == "prometheus"]
    problems.require(
        urls == ["http://prometheus:9090"] and "prometheus" in compose["services"],
        "provisioned data source is the compose Prometheus",
        urls,
    )


# --- Kubernetes ---------------------------------------------------------------------------


def check_k8s(argv: list[str]) -> int:
    import kubernetes_validate

    problems = Problems("deploy/k8s (kustomize output)")
    docs = load_yaml_docs(Path(argv[0]))
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    check_kustomization(problems)
    for doc in docs:
        name = f"{doc['apiVersion']} {doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == KEDA_API:
            continue  # no schema bundled: checked structurally below
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as exc:  # ValidationError, SchemaNotFoundError, ...
                problems.bad(f"{name} on Kubernetes {version}: {type(exc).__name__}: {exc}")
            else:
                problems.ok(f"{name} valid (strict) on Kubernetes {version}")
        problems.require("namespace" not in doc["metadata"], f"{name} has no namespace", "pinned")
    config = check_config(objects, problems)
    deployments = [d for d in docs if d["kind"] in {"Deployment", "Job"}]
    for workload in deployments:
        check_workload(workload, objects, config, problems)
    check_selectors(docs, problems)
    check_keda(objects, problems)
    return problems.finish()


def check_kustomization(problems: Problems) -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    problems.require(
        listed == present, f"kustomization lists all {len(present)} manifests", listed ^ present
    )


def check_config(objects: dict[tuple[str, str], Any], problems: Problems) -> dict[str, str]:
    config: dict[str, str] = {}
    for (kind, _), obj in objects.items():
        if kind == "ConfigMap":
            config.update(obj.get("data", {}))
        if kind == "Secret":
            config.update(obj.get("stringData", {}))
            problems.require(
                {"SEGMENTS_DATABASE_URL", "SEGMENTS_AMQP_URL"} <= obj.get("stringData", {}).keys(),
                "Secret holds SEGMENTS_DATABASE_URL and SEGMENTS_AMQP_URL",
                "missing",
            )
    unknown = set(config) - set(settings_env()) - EXTRA_SEGMENTS_VARS
    problems.require(not unknown, f"{len(config)} ConfigMap/Secret keys are settings", unknown)
    error = parse_settings(config)
    problems.require(error is None, "ConfigMap/Secret values parse as Settings", error)
    return config


def check_workload(
    workload: dict[str, Any],
    objects: dict[tuple[str, str], Any],
    config: dict[str, str],
    problems: Problems,
) -> None:
    spec = workload["spec"]["template"]["spec"]
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    problems.require(
        spec.get("securityContext", {}).get("runAsNonRoot") is True,
        f"{name} runs as non-root",
        "no",
    )
    for container in spec["containers"]:
        where = f"{name} container {container['name']}"
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    ref = source[key]["name"]
                    problems.require((kind, ref) in objects, f"{where} env from {kind} {ref}", "")
        resources = container.get("resources", {})
        problems.require(
            "memory" in resources.get("requests", {}) and "memory" in resources.get("limits", {}),
            f"{where} has memory requests and limits",
            resources,
        )
        command = container.get("command", [])
        if command[-1:] == ["api"]:
            check_api_probes(where, container, config, problems)
        if command[-1:] == ["worker"]:
            check_worker_pod(where, spec, container, config, problems)


def container_port(container: dict[str, Any], port: object) -> object:
    by_name = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    return by_name.get(port, port)


def check_api_probes(
    where: str, container: dict[str, Any], config: dict[str, str], problems: Problems
) -> None:
    from api_shim.health import router

    paths = {getattr(route, "path", None) for route in router.routes}
    port = int(config.get("SEGMENTS_API_PORT", "8000"))
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container.get(probe, {}).get("httpGet", {})
        problems.require(
            get.get("path") == path
            and path in paths
            and container_port(container, get.get("port")) == port,
            f"{where} {probe} GET :{port}{path} (a route of api_shim/health.py)",
            get,
        )


def check_worker_pod(
    where: str,
    spec: dict[str, Any],
    container: dict[str, Any],
    config: dict[str, str],
    problems: Problems,
) -> None:
    port = int(config.get("SEGMENTS_WORKER_METRICS_PORT", "9100"))
    get = container.get("livenessProbe", {}).get("httpGet", {})
    problems.require(
        get.get("path") == "/metrics" and container_port(container, get.get("port")) == port,
        f"{where} livenessProbe GET :{port}/metrics",
        get,
    )
    grace = float(config.get("SEGMENTS_SHUTDOWN_GRACE_S", "30"))
    period = spec.get("terminationGracePeriodSeconds", 30)
    problems.require(
        period > grace,
        f"{where} terminationGracePeriodSeconds {period} > SEGMENTS_SHUTDOWN_GRACE_S {grace:g}",
        "too short: in-flight builds are killed",
    )


def check_selectors(docs: list[dict[str, Any]], problems: Problems) -> None:
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] == "Deployment"
    ]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
            problems.require(selects(selector), f"{name} selects a Deployment's pods", selector)
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
            problems.require(selects(selector), f"{name} selects a Deployment's pods", selector)
        if doc["kind"] == "Deployment":
            match = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            problems.require(match.items() <= labels.items(), f"{name} selector matches", match)


def check_keda(objects: dict[tuple[str, str], Any], problems: Problems) -> None:
    from worker.topology import WORK_QUEUES

    scaled = [o for (k, _), o in objects.items() if k == "ScaledObject"]
    problems.require(len(scaled) == 1, "one KEDA ScaledObject", len(scaled))
    for obj in scaled:
        name = f"ScaledObject/{obj['metadata']['name']}"
        problems.require(obj["apiVersion"] == KEDA_API, f"{name} is {KEDA_API}", obj["apiVersion"])
        spec = obj["spec"]
        target = objects.get(("Deployment", spec["scaleTargetRef"]["name"]))
        commands = [c.get("command") for c in (target or {}).get("spec", {}).get("template", {})
                    .get("spec", {}).get("containers", [])]  # fmt: skip
        problems.require(
            ["segments", "worker"] in commands,
            f"{name} scales Deployment/{spec['scaleTargetRef']['name']} (segments worker)",
            "not the worker Deployment",
        )
        problems.require(
            spec.get("minReplicaCount", 0) >= 1,
            f"{name} never scales to zero (the scheduler runs in workers)",
            spec.get("minReplicaCount"),
        )
        problems.require(
            spec.get("maxReplicaCount", 100) > spec.get("minReplicaCount", 0),
            f"{name} max > min replicas",
            "",
        )
        queues = set()
        for trigger in spec["triggers"]:
            queues.add(trigger["metadata"].get("queueName"))
            check_keda_trigger(name, trigger, objects, problems)
        wanted = {q.name for q in WORK_QUEUES}
        problems.require(
            queues == wanted, f"{name} watches the work queues of worker/topology.py", queues
        )


def check_keda_trigger(
    name: str, trigger: dict[str, Any], objects: dict[tuple[str, str], Any], problems: Problems
) -> None:
    meta = trigger["metadata"]
    where = f"{name} trigger {meta.get('queueName')}"
    problems.require(trigger["type"] == "rabbitmq", f"{where} type rabbitmq", trigger["type"])
    problems.require(
        meta.get("mode") == "QueueLength" and re.fullmatch(r"\d+(\.\d+)?", str(meta.get("value"))),
        f"{where} QueueLength with a numeric target",
        meta,
    )
    problems.require("host" not in meta, f"{where} keeps credentials out of metadata", "host")
    auth = objects.get(("TriggerAuthentication", trigger.get("authenticationRef", {}).get("name")))
    problems.require(auth is not None, f"{where} authenticationRef exists", "missing")
    for ref in (auth or {}).get("spec", {}).get("secretTargetRef", []):
        secret = objects.get(("Secret", ref["name"]), {})
        keys = {**secret.get("stringData", {}), **secret.get("data", {})}
        problems.require(
            ref["parameter"] == "host" and ref["key"] in keys,
            f"{where} auth: {ref['parameter']} from Secret/{ref['name']} key {ref['key']}",
            "no such Secret key",
        )


# --- runbook links -------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def check_runbooks(_: list[str]) -> int:
    """Warn (exit 0) about alert runbook links to README sections that do not exist (yet)."""
    readme = (ROOT / "README.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+\s+(.+)$", readme, re.M)}
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    links: dict[str, list[str]] = {}
    for group in alerts["groups"]:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url")
            if url:
                links.setdefault(url, []).append(rule["alert"])
    for url, rules in sorted(links.items()):
        anchor = url.partition("#")[2]
        state = "ok  " if url.startswith("README.md#") and anchor in anchors else "WARN"
        print(f"  {state} {url} ({len(rules)} alerts)")
        if state == "WARN":
            print(f"       README.md has no heading with anchor #{anchor} yet")
    return 0


CHECKS: dict[str, Callable[[list[str]], int]] = {
    "runbooks": check_runbooks,
    "settings": check_settings,
    "dockerfile": check_dockerfile,
    "compose": check_compose,
    "promql-names": check_promql_names,
    "dashboard": check_dashboard,
    "k8s": check_k8s,
}


def main(argv: Iterable[str]) -> int:
    args = list(argv)
    if not args or args[0] not in CHECKS:
        print(__doc__)
        return 2
    sys.path.insert(0, str(ROOT))
    return CHECKS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
