#!/usr/bin/env python3
"""Offline checks of the hookguard Helm chart and Dockerfile.

Renders helm/hookguard with the Helm SDK (no cluster, no helm binary), then
checks what it renders: every manifest against the Kubernetes 1.30 schemas,
the pod's shape (sidecar, ports, probes, security, shutdown timing), that
the config the chart writes is accepted by the real hookguard binary with
the secrets the pod would provide, and that the PrometheusRule carries the
repository's alert rules and passes promtool. Also hadolint on the
Dockerfile and yamllint on values.yaml.

Each check prints PASS, FAIL or SKIP with a reason; the last line is
`N passed, M failed` (`, K skipped` when any were skipped). Exit status 1
when anything failed.

Environment: HOOKGUARD_BIN (default target/debug/hookguard), PROMTOOL
(default promtool), and the venv's tools on PATH (run.sh sets these up).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "hookguard"
KUBE_VERSION = "1.30.0"
HOOKGUARD_BIN = Path(os.environ.get("HOOKGUARD_BIN", REPO / "target" / "debug" / "hookguard"))
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
SECRETS_DIR = "/var/run/secrets/hookguard"
QUEUE_DIR = "/var/lib/hookguard/queue"
# Kinds from the Prometheus operator's CRDs: kubernetes-validate bundles no
# schema for them, so they get structural asserts and promtool instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

RELEASE, NAMESPACE = "shop", "payments"
FULLNAME = f"{RELEASE}-hookguard"

results: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}


class Skip(Exception):
    """A check that cannot run here, with the reason printed beside SKIP."""


def check(name: str, fn: Callable[[], None]) -> None:
    """Runs one check and records its outcome."""
    try:
        fn()
    except Skip as reason:
        results["skipped"] += 1
        print(f"SKIP {name}: {reason}")
    except Exception as error:  # a failed check, whatever raised it
        results["failed"] += 1
        detail = str(error) if isinstance(error, (AssertionError, helm.HelmError)) else traceback.format_exc()
        print(f"FAIL {name}: {detail}")
    else:
        results["passed"] += 1
        print(f"PASS {name}")


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Drops the Go side's INFO lines (e.g. that files/alerts.yaml is a
    symlink it followed) written straight to fd 2; anything else is passed
    on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if " INFO found symbolic link in path" not in line:
                    print(line, file=sys.stderr)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


# --------------------------------------------------------------------------
# Values for the scenarios.

# Every switch on, the native sidecar, and a config that uses each way of
# naming a secret and each kind of TOML value the chart writes.
ALL_ON: dict[str, Any] = {
    "app": {
        "image": {"repository": "registry.example.com/shop", "tag": "4.2.0"},
        "port": 9000,
        "env": [{"name": "LISTEN_ADDR", "value": "127.0.0.1:9000"}],
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    },
    "hookguard": {
        "image": {"repository": "registry.example.com/hookguard", "tag": "0.1.0"},
        "nativeSidecar": True,
        "env": [
            {
                "name": "VENDOR_SECRET_PREVIOUS",
                "valueFrom": {"secretKeyRef": {"name": "vendor-webhook", "key": "previous"}},
            }
        ],
    },
    "config": {
        "server": {
            "shutdown_grace": "40s",
            "max_body": "2MiB",
            "unmatched": "reject",
            "trusted_proxies": ["10.0.0.0/8"],
            "max_connections": 5000,
            "workers": 2,
            "reload_interval": "5s",
        },
        "routes": [
            {
                "name": "stripe",
                "path": "/webhooks/stripe",
                "scheme": "stripe",
                "secrets": [{"secretName": "stripe-webhook", "key": "signing-secret", "id": "current"}],
                "tolerance": "5m",
            },
            {
                "name": "vendor",
                "path": "/vendor/webhooks/*",
                "scheme": "hmac",
                "secrets": [
                    {"secretName": "vendor-webhook", "key": "current", "id": "current"},
                    {"env": "VENDOR_SECRET_PREVIOUS", "id": "previous"},
                ],
                "dedupe": ["signature", "json:/id"],
                "rate_limit": {"requests_per_second": 50, "burst": 100},
                "content_types": ["application/json"],
                "max_body": "256KiB",
                "hmac": {
                    "header": "X-Vendor-Signature",
                    "encoding": "hex",
                    "message": "{body}.{timestamp}",
                    "timestamp_header": "X-Vendor-Timestamp",
                },
            },
            {
                "name": "discord",
                "path": "/webhooks/discord",
                "scheme": "discord",
                "public_keys": [{"secretName": "discord-app", "key": "public-key"}],
            },
        ],
    },
    "replay": {
        "redisUrl": "redis://redis-master.redis.svc:6379/0",
        "passwordSecret": {"name": "redis-auth", "key": "redis-password"},
        "keyPrefix": "hookguard:shop:",
        "storeTimeout": "500ms",
        "onStoreError": "reject",
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "podDisruptionBudget": {"enabled": True},
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
    "serviceAccount": {"create": True},
}

# Secret contents hookguard check gets for each (Secret, key) and env var;
# the discord route needs a real Ed25519 public key (64 hex characters).
FAKE_FILES = {
    ("discord-app", "public-key"): "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
}

# The app's calls to a partner through egress: a bearer key and an HMAC
# secret from one Secret, a client key from another, and an env secret.
EGRESS: dict[str, Any] = {
    "app": {
        "env": [{"name": "CARTELCRM_BASE_URL", "value": "http://127.0.0.1:8001/cartelcrm"}],
    },
    "hookguard": {
        "env": [{"name": "PARTNER_PREVIOUS", "valueFrom": {"secretKeyRef": {"name": "cartelcrm-previous", "key": "hmac"}}}],
    },
    "config": {
        "egress": {
            "max_body": "1MiB",
            "on_app_credentials": "reject",
            "routes": [
                {
                    "name": "cartelcrm",
                    "prefix": "/cartelcrm",
                    "upstream": "https://cartelcrm.example/api",
                    "timeout": "10s",
                    "auth": {"bearer": {"secretName": "cartelcrm-egress", "key": "api-key"}},
                    "sign": {
                        "header": "X-Signature",
                        "prefix": "sha256=",
                        "message": "{body}",
                        "timestamp_header": "X-Timestamp",
                        "secrets": [
                            {"secretName": "cartelcrm-egress", "key": "hmac-secret", "id": "current"},
                            {"env": "PARTNER_PREVIOUS", "id": "previous"},
                        ],
                    },
                    "idempotency": {"header": "Idempotency-Key", "source": "generate"},
                    "retry": {"on": ["429", "5xx", "connect", "timeout"], "backoff": ["200ms", "1s", "3s"], "max_attempts": 4, "max_elapsed": "20s"},
                },
            ],
        },
    },
}

# Durable delivery: the queue on its own volume, one route delivering
# durably.
QUEUE_ON: dict[str, Any] = {
    "queue": {"enabled": True, "maxBytes": "1GiB", "persistence": {"size": "2Gi", "storageClass": "fast"}},
    "config": {
        "routes": [
            {
                "name": "github",
                "path": "/webhooks/github",
                "scheme": "github",
                "secrets": [{"secretName": "hookguard-github", "key": "webhook-secret"}],
                "delivery": {"mode": "durable", "backoff": ["10s", "1m"], "max_age": "24h"},
            }
        ]
    },
}

# Durable delivery on the Redis replay already uses, three replicas.
QUEUE_REDIS: dict[str, Any] = {
    **QUEUE_ON,
    "replicaCount": 3,
    "queue": {"enabled": True, "store": "redis", "keyPrefix": "hg:q:", "acceptRedisRisk": True},
    "replay": {"redisUrl": "redis://redis-master.redis:6379/0", "passwordSecret": {"name": "redis-auth"}},
}

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "native-sidecar": {"hookguard": {"nativeSidecar": True}},
    "all-on": ALL_ON,
    "egress": EGRESS,
    "egress-native-sidecar": {**EGRESS, "hookguard": {**EGRESS["hookguard"], "nativeSidecar": True}},
    "queue": QUEUE_ON,
    "queue-redis": QUEUE_REDIS,
}


# --------------------------------------------------------------------------
# Rendering.

_chart: helm.Chart | None = None


def chart() -> helm.Chart:
    global _chart
    if _chart is None:
        with quiet_stderr():
            _chart = helm.Chart.load(CHART)
    return _chart


def render(values: dict[str, Any]) -> dict[str, str]:
    """Template path -> rendered text, empty renders dropped."""
    out = chart().render(values, name=RELEASE, namespace=NAMESPACE)
    return {path: text for path, text in out.items() if text.strip()}


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def hookguard_container(spec: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == "hookguard"]
    assert len(found) == 1, f"expected one hookguard container, found {len(found)}"
    return found[0]


def config_text(docs: list[dict[str, Any]]) -> str:
    return one(docs, "ConfigMap", FULLNAME)["data"]["config.toml"]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)\s*", duration)
    assert match, f"bad duration {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * scale


def secret_refs(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(files, env vars) the config's secrets and public keys name."""
    files, envs = [], []
    for route in config.get("routes", []):
        for source in route.get("secrets", []) + route.get("public_keys", []):
            if "file" in source:
                files.append(source["file"])
            if "env" in source:
                envs.append(source["env"])
    def walk(node: Any) -> None:
        # Egress sources sit at any depth of a route (auth, sign, tls).
        if isinstance(node, dict):
            if "file" in node and isinstance(node["file"], str):
                files.append(node["file"])
            if "env" in node and isinstance(node["env"], str):
                envs.append(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config.get("egress", {}).get("routes", []))
    password = config.get("replay", {}).get("redis_password")
    if isinstance(password, dict) and "env" in password:
        envs.append(password["env"])
    return files, envs


# --------------------------------------------------------------------------
# Checks per rendered scenario.


def scenario_checks(label: str, values: dict[str, Any]) -> None:
    effective = chart().merge_values(values)
    state: dict[str, Any] = {}

    def do_render() -> None:
        state["rendered"] = render(values)
        state["docs"] = objects(state["rendered"])
        kinds = sorted(d["kind"] for d in state["docs"])
        assert "Deployment" in kinds and "Service" in kinds and "ConfigMap" in kinds, kinds

    check(f"[{label}] chart renders", do_render)
    if "docs" not in state:
        return
    rendered, docs = state["rendered"], state["docs"]
    spec = pod_spec(docs)
    hg = hookguard_container(spec)
    config = tomllib.loads(config_text(docs))
    native = effective["hookguard"]["nativeSidecar"]

    def lint() -> None:
        with quiet_stderr():
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
        assert not bad, f"helm lint --strict: {bad}"

    check(f"[{label}] helm lint --strict --kube-version v{KUBE_VERSION}", lint)

    def kube_validate() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for path, text in rendered.items():
                if path.endswith("NOTES.txt"):
                    continue
                out = Path(tmp) / path.replace("/", "_")
                out.write_text(text)
                paths.append(str(out))
            proc = run(["kubernetes-validate", "--strict", "-k", KUBE_VERSION, "--quiet", *paths])
        problems = []
        for line in proc.stdout.splitlines():
            if line.startswith("WARN") and any(f"kind {k} with api version monitoring.coreos.com/" in line for k in CRD_KINDS):
                continue
            if line.strip():
                problems.append(line)
        assert proc.returncode == 0 and not problems, f"rc={proc.returncode}\n" + "\n".join(problems) + proc.stderr

    check(f"[{label}] kubernetes-validate --strict -k {KUBE_VERSION} on every manifest", kube_validate)

    def sidecar_placement() -> None:
        containers = {c["name"] for c in spec["containers"]}
        inits = {c["name"]: c for c in spec.get("initContainers", [])}
        assert effective["app"]["name"] in containers, "app container missing"
        if native:
            assert "hookguard" in inits and "hookguard" not in containers, "hookguard should be an init container"
            assert inits["hookguard"].get("restartPolicy") == "Always", "native sidecar needs restartPolicy Always"
        else:
            assert "hookguard" in containers and "hookguard" not in inits, "hookguard should be a second container"
            assert "restartPolicy" not in hg, "restartPolicy is only for native sidecars"

    check(f"[{label}] hookguard runs beside the app ({'native sidecar' if native else 'second container'})", sidecar_placement)

    def ports_and_service() -> None:
        ports = {p["name"]: p["containerPort"] for p in hg["ports"]}
        assert ports == {"webhooks": effective["hookguard"]["ports"]["webhooks"], "admin": effective["hookguard"]["ports"]["admin"]}, ports
        service = one(docs, "Service", FULLNAME)
        targets = [p["targetPort"] for p in service["spec"]["ports"]]
        assert targets == ["webhooks"], f"webhooks Service targets {targets}"
        app = next(c for c in spec["containers"] if c["name"] == effective["app"]["name"])
        assert not any(p.get("name") in ("webhooks", "admin") for p in app.get("ports", [])), "app must not carry hookguard's port names"
        server = config["server"]
        assert server["listen"] == f"0.0.0.0:{ports['webhooks']}", server["listen"]
        assert server["admin_listen"] == f"0.0.0.0:{ports['admin']}", server["admin_listen"]
        if "upstream" not in effective["config"]["server"]:
            assert server["upstream"] == f"http://127.0.0.1:{effective['app']['port']}", server["upstream"]

    check(f"[{label}] ports webhooks/admin; Service targetPort webhooks; config listens on them", ports_and_service)

    def probes() -> None:
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/readyz")):
            get = hg[probe]["httpGet"]
            assert get == {"path": path, "port": "admin"}, f"{probe}: {get}"

    check(f"[{label}] probes: readiness /readyz, liveness /healthz, on the admin port", probes)

    def security() -> None:
        sc = hg["securityContext"]
        assert sc.get("runAsNonRoot") is True, sc
        assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, sc
        assert sc.get("readOnlyRootFilesystem") is True, sc
        assert sc.get("allowPrivilegeEscalation") is False, sc
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], sc
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", sc
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        res = hg["resources"]
        assert res.get("requests", {}).get("cpu") and res["requests"].get("memory"), res
        assert res.get("limits", {}).get("memory"), res

    check(f"[{label}] security context and resources", security)

    def termination() -> None:
        grace = seconds(config["server"].get("shutdown_grace", "25s"))
        pause = hg["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause > 0, "preStop pause"
        period = spec["terminationGracePeriodSeconds"]
        assert period > pause + grace, f"terminationGracePeriodSeconds {period} <= preStop {pause} + shutdown_grace {grace}"
        assert period >= 30, period

    check(f"[{label}] terminationGracePeriodSeconds > preStop pause + shutdown_grace", termination)

    def checksum() -> None:
        annotation = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert annotation == hashlib.sha256(config_text(docs).encode()).hexdigest(), "checksum/config is not the config's sha256"

    check(f"[{label}] checksum/config annotation is the rendered config's sha256", checksum)

    def mounts() -> None:
        volumes = {v["name"]: v for v in spec["volumes"]}
        by_path = {m["mountPath"]: m for m in hg["volumeMounts"]}
        config_mount = by_path.get("/etc/hookguard")
        assert config_mount and config_mount.get("readOnly") is True, "config not mounted read-only at /etc/hookguard"
        assert volumes[config_mount["name"]]["configMap"]["name"] == FULLNAME
        assert hg["args"][:3] == ["serve", "--config", "/etc/hookguard/config.toml"], hg["args"]
        files, envs = secret_refs(config)
        for file in files:
            mount = next((m for p, m in by_path.items() if file.startswith(p.rstrip("/") + "/")), None)
            assert mount, f"{file} is under no mount of the hookguard container"
            assert mount.get("readOnly") is True and "subPath" not in mount, f"{file}: mount must be read-only, without subPath (rotation)"
            secret = volumes[mount["name"]].get("secret")
            assert secret and "items" not in secret, f"{file}: should be a whole Secret volume"
            relative = file[len(mount["mountPath"].rstrip("/")) + 1:]
            assert "/" not in relative and relative, f"{file}: key path {relative!r}"
        defined = {e["name"] for e in hg.get("env", [])}
        missing = [e for e in envs if e not in defined]
        assert not missing, f"config names env vars the container does not define: {missing}"

    check(f"[{label}] config and every secret the config names are mounted/defined for hookguard", mounts)

    def binary_accepts_config() -> None:
        if not HOOKGUARD_BIN.exists():
            raise AssertionError(f"{HOOKGUARD_BIN} not built (cargo build)")
        with tempfile.TemporaryDirectory() as tmp:
            text = config_text(docs).replace(SECRETS_DIR + "/", tmp + "/secrets/")
            # The queue's volume is the pod's; here a directory stands in.
            text = text.replace(QUEUE_DIR + "/", tmp + "/")
            files, envs = secret_refs(tomllib.loads(text))
            for file in files:
                path = Path(file)
                path.parent.mkdir(parents=True, exist_ok=True)
                key = (path.parent.name, path.name)
                path.write_text(FAKE_FILES.get(key, f"test-secret-for-{path.parent.name}-{path.name}") + "\n")
            env = {"PATH": os.environ.get("PATH", "")}
            env.update({name: f"test-value-{name.lower()}" for name in envs})
            cfg = Path(tmp) / "config.toml"
            cfg.write_text(text)
            # As many processes as the chart runs: an embedded queue is
            # refused for more than one.
            replicas = effective["autoscaling"]["maxReplicas"] if effective["autoscaling"]["enabled"] else effective["replicaCount"]
            proc = run([str(HOOKGUARD_BIN), "check", "--replicas", str(replicas), "--config", str(cfg)], env=env)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 and 'replay.store: "redis" is not one of' in output:
            raise Skip("this hookguard build has no redis store yet (issue 6); the redis config is checked once it does")
        assert proc.returncode == 0, f"hookguard check exit {proc.returncode}:\n{output}"

    check(f"[{label}] hookguard check accepts the rendered config", binary_accepts_config)

    egress = effective["config"].get("egress") or {}
    if egress:

        def egress_secrets_only_in_hookguard() -> None:
            names = set(re.findall(r'"secretName": "([^"]+)"', __import__("json").dumps(egress)))
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in hg.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            assert names, "the scenario names no egress Secret"
            volumes = {v["name"]: v for v in spec["volumes"]}
            secret_volumes = {n for n, v in volumes.items() if v.get("secret", {}).get("secretName") in names}
            mounted = {m["name"] for m in hg["volumeMounts"]}
            for name in names - {e["valueFrom"]["secretKeyRef"]["name"] for e in hg.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}:
                assert any(volumes[v]["secret"]["secretName"] == name for v in mounted & secret_volumes), f"Secret {name} is not mounted into hookguard"
            others = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] != "hookguard"]
            assert any(c["name"] == effective["app"]["name"] for c in others), "no app container"
            for container in others:
                text = yaml.safe_dump(container)
                for name in names:
                    assert name not in text, f"container {container['name']} refers to egress Secret {name}:\n{text}"
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] not in secret_volumes, f"{container['name']} mounts {mount['name']}"
                    assert not mount["mountPath"].startswith(SECRETS_DIR), f"{container['name']} mounts under {SECRETS_DIR}"
                for source in container.get("envFrom", []):
                    assert source.get("secretRef", {}).get("name") not in names, f"{container['name']} envFrom an egress Secret"
            listen = config["egress"]["listen"]
            assert listen == f"127.0.0.1:{effective['hookguard']['ports']['egress']}", listen

        check(f"[{label}] egress Secrets are mounted into hookguard only; the app has no reference to them; egress listens on 127.0.0.1", egress_secrets_only_in_hookguard)

    # Switches.
    sm_on = effective["metrics"]["serviceMonitor"]["enabled"]
    rule_on = effective["metrics"]["prometheusRule"]["enabled"]
    pdb_on = effective["podDisruptionBudget"]["enabled"]
    hpa_on = effective["autoscaling"]["enabled"]
    redis_url = effective["replay"]["redisUrl"]

    def switches_off_render_nothing() -> None:
        kinds = {d["kind"] for d in docs}
        for kind, on in (("ServiceMonitor", sm_on), ("PrometheusRule", rule_on), ("PodDisruptionBudget", pdb_on), ("HorizontalPodAutoscaler", hpa_on)):
            assert (kind in kinds) == bool(on), f"{kind} rendered={kind in kinds}, switch={on}"

    check(f"[{label}] optional objects follow their switches", switches_off_render_nothing)

    queue_on = effective["queue"]["enabled"] and effective["queue"]["store"] == "embedded"
    queue_redis = effective["queue"]["enabled"] and effective["queue"]["store"] == "redis"

    def queue_volume() -> None:
        deployment = one(docs, "Deployment")
        claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
        mounts = {m["name"]: m["mountPath"] for m in hookguard_container(pod_spec(docs)).get("volumeMounts", [])}
        config = tomllib.loads(config_text(docs))
        if queue_redis:
            # Shared by replicas: no volume, the default rolling update.
            assert not claims and "queue" not in mounts
            assert deployment["spec"].get("strategy") is None
            queue = config["queue"]
            assert queue["store"] == "redis" and queue["redis_url"] == (effective["queue"]["redisUrl"] or effective["replay"]["redisUrl"])
            assert queue["key_prefix"] == effective["queue"]["keyPrefix"] and queue["accept_redis_risk"] is True
            if effective["replay"]["passwordSecret"]["name"]:
                assert queue["redis_password"] == {"env": "HOOKGUARD_REDIS_PASSWORD"}
            return
        if not queue_on:
            assert not claims and "queue" not in config and "queue" not in mounts
            assert deployment["spec"].get("strategy") is None
            return
        (claim,) = claims
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["spec"]["resources"]["requests"]["storage"] == effective["queue"]["persistence"]["size"]
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
        assert volumes["queue"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert mounts["queue"] == QUEUE_DIR
        assert config["queue"]["path"] == QUEUE_DIR + "/queue.db"
        assert pod_spec(docs)["securityContext"]["fsGroup"] == 65532

    check(f"[{label}] the queue's claim, mount, Recreate strategy and [queue] follow queue.enabled and queue.store", queue_volume)

    if sm_on:

        def service_monitor() -> None:
            monitor = one(docs, "ServiceMonitor")
            selector = monitor["spec"]["selector"]["matchLabels"]
            matching = [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()]
            assert len(matching) == 1, f"ServiceMonitor selects {len(matching)} Services"
            ports = {p["name"]: p for p in matching[0]["spec"]["ports"]}
            endpoint = monitor["spec"]["endpoints"][0]
            assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics", endpoint
            assert ports["admin"]["targetPort"] == "admin", ports
            assert "webhooks" not in ports, "the metrics Service should carry the admin port only"
            assert "admin" not in {p["name"] for p in one(docs, "Service", FULLNAME)["spec"]["ports"]}
            for key, value in effective["metrics"]["serviceMonitor"]["labels"].items():
                assert monitor["metadata"]["labels"].get(key) == value

        check(f"[{label}] ServiceMonitor scrapes /metrics on the admin port via its own Service", service_monitor)

    if rule_on:

        def rule_matches_source() -> None:
            source = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
            assert one(docs, "PrometheusRule")["spec"] == source, "PrometheusRule spec differs from deploy/prometheus/alerts.yaml"

        check(f"[{label}] PrometheusRule spec equals deploy/prometheus/alerts.yaml", rule_matches_source)

        def promtool_rules() -> None:
            spec_ = one(docs, "PrometheusRule")["spec"]
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "alerts.yaml").write_text(yaml.safe_dump(spec_, sort_keys=False))
                proc = run([PROMTOOL, "check", "rules", "alerts.yaml"], cwd=tmp)
                assert proc.returncode == 0, proc.stdout + proc.stderr
                # The repository's unit tests, run against the rendered rules.
                shutil.copy(REPO / "deploy" / "prometheus" / "alerts_test.yaml", tmp)
                proc = run([PROMTOOL, "test", "rules", "alerts_test.yaml"], cwd=tmp)
                assert proc.returncode == 0, proc.stdout + proc.stderr

        check(f"[{label}] promtool check rules / test rules on the rendered PrometheusRule", promtool_rules)

    if pdb_on:

        def pdb() -> None:
            budget = one(docs, "PodDisruptionBudget")
            deployment = one(docs, "Deployment")
            assert budget["spec"]["selector"] == deployment["spec"]["selector"], "PDB selects other pods"

        check(f"[{label}] PodDisruptionBudget selects the Deployment's pods", pdb)

    if hpa_on:

        def hpa() -> None:
            scaler = one(docs, "HorizontalPodAutoscaler")
            deployment = one(docs, "Deployment")
            assert scaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
            assert "replicas" not in deployment["spec"], "replicas must be left to the HPA"
            for container in spec["containers"] + [hg]:
                assert container.get("resources", {}).get("requests", {}).get("cpu"), f"{container['name']} has no CPU request"

        check(f"[{label}] HorizontalPodAutoscaler targets the Deployment, which leaves replicas to it", hpa)

    def replay() -> None:
        section = config["replay"]
        if redis_url:
            assert section["store"] == "redis" and section["redis_url"] == redis_url, section
            secret = effective["replay"]["passwordSecret"]
            if secret["name"]:
                env_name = section["redis_password"]["env"]
                env = next(e for e in hg["env"] if e["name"] == env_name)
                assert env["valueFrom"]["secretKeyRef"] == {"name": secret["name"], "key": secret["key"]}, env
            assert "max_entries" not in section
        else:
            expected = {"store": "memory", "max_entries": effective["replay"]["maxEntries"]}
            if effective["replay"]["snapshot"]["enabled"]:
                expected["snapshot_path"] = "/var/lib/hookguard/replay.snapshot"
                if effective["replay"]["snapshot"]["interval"]:
                    expected["snapshot_interval"] = effective["replay"]["snapshot"]["interval"]
                mount = next(m for m in hg["volumeMounts"] if m["name"] == "replay-state")
                assert mount["mountPath"] == "/var/lib/hookguard", mount
                volume = next(v for v in spec["volumes"] if v["name"] == "replay-state")
                assert "emptyDir" in volume, volume
            assert section == expected, section

    check(f"[{label}] [replay] is {'redis at replay.redisUrl' if redis_url else 'memory'}", replay)


# --------------------------------------------------------------------------
# Checks across renders.


def checksum_follows_config() -> None:
    def annotation(values: dict[str, Any]) -> str:
        docs = objects(render(values))
        return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = annotation({})
    assert annotation({}) == base, "same values, different checksum"
    assert annotation({"config": {"server": {"shutdown_grace": "20s"}}}) != base, "server change kept the checksum"
    routes = copy.deepcopy(chart().values["config"]["routes"])
    routes[0]["path"] = "/hooks/github"
    assert annotation({"config": {"routes": routes}}) != base, "route change kept the checksum"
    assert annotation({"replay": {"redisUrl": "redis://r:6379"}}) != base, "replay change kept the checksum"
    # Values that do not reach the config do not roll the pods.
    assert annotation({"service": {"port": 8080}}) == base, "a Service change moved the checksum"


def grace_follows_shutdown_grace() -> None:
    docs = objects(render({"config": {"server": {"shutdown_grace": "2m"}}}))
    period = pod_spec(docs)["terminationGracePeriodSeconds"]
    assert period > 120 + 5, period
    try:
        render({"terminationGracePeriodSeconds": 20})
    except helm.HelmError as error:
        assert "terminationGracePeriodSeconds" in str(error), error
    else:
        raise AssertionError("terminationGracePeriodSeconds 20 with shutdown_grace 25s rendered")


def refuses(values: dict[str, Any], words: str) -> Callable[[], None]:
    def fn() -> None:
        try:
            render(values)
        except helm.HelmError as error:
            assert words in str(error), f"error does not mention {words!r}: {error}"
        else:
            raise AssertionError("rendered")

    return fn


def yamllint_values() -> None:
    proc = run(["yamllint", "--strict", str(CHART / "values.yaml"), str(CHART / "Chart.yaml")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def hadolint() -> None:
    proc = run(["hadolint", "--failure-threshold", "style", str(REPO / "Dockerfile")])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def dockerfile_agrees_with_chart() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    final = stages[-1]
    user = re.search(r"^USER (\d+)(?::(\d+))?\s*$", final, flags=re.M)
    assert user, "final stage needs a numeric USER"
    values = chart().values
    assert int(user.group(1)) == values["hookguard"]["securityContext"]["runAsUser"], "USER differs from runAsUser"
    if user.group(2):
        assert int(user.group(2)) == values["hookguard"]["securityContext"]["runAsGroup"], "USER group differs from runAsGroup"
    exposed = {int(p) for p in re.findall(r"\d+", re.search(r"^EXPOSE (.+)$", final, flags=re.M).group(1))}
    # The egress port is bound on 127.0.0.1 inside the pod: not exposed.
    network_ports = {v for k, v in values["hookguard"]["ports"].items() if k != "egress"}
    assert exposed == network_ports, f"EXPOSE {exposed}"
    assert "/etc/hookguard/config.toml" in final, "default config path"
    # Every file the build stage copies from the context exists and is not
    # excluded by .dockerignore's allow-list.
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for source in sources.split():
            assert (REPO / source).exists(), f"COPY {source}: missing"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    # include_str!/include_bytes! paths must be inside the copied context.
    for rs in (REPO / "src").rglob("*.rs"):
        for included in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', rs.read_text()):
            target = (rs.parent / included).resolve().relative_to(REPO)
            assert str(target).split("/")[0] in allowed, f"{rs}: includes {target}, not in the image's build context"


def alerts_single_source() -> None:
    link = CHART / "files" / "alerts.yaml"
    source = REPO / "deploy" / "prometheus" / "alerts.yaml"
    assert link.resolve() == source.resolve() or link.read_bytes() == source.read_bytes(), "files/alerts.yaml is not deploy/prometheus/alerts.yaml"


def readme_documents_values() -> None:
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))

    def leaves(node: Any, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node and prefix not in ("config.server", "hookguard.resources", "hookguard.securityContext", "podSecurityContext") and not prefix.startswith("hookguard.probes."):
            return [leaf for key, value in node.items() for leaf in leaves(value, f"{prefix}.{key}" if prefix else key)]
        return [prefix]

    missing = [key for key in leaves(chart().values) if key not in documented]
    assert not missing, f"values not in README's table: {missing}"
    unknown = [key for key in documented if not _has_value(chart().values, key)]
    assert not unknown, f"README documents values that do not exist: {unknown}"


def _has_value(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def readme_sidecar_snippet() -> None:
    """The README's snippet for a Deployment the chart does not own: its
    ConfigMap and patch, applied to a plain Deployment the way
    `kubectl patch --type strategic` merges containers and volumes by
    name, give a valid Deployment whose hookguard config the binary
    accepts."""
    readme = (CHART / "README.md").read_text()
    blocks = re.findall(r"```yaml\n# (hookguard-[a-z-]+\.yaml)\n(.*?)```", readme, flags=re.S)
    files = {name: yaml.safe_load(body) for name, body in blocks}
    assert {"hookguard-config.yaml", "hookguard-patch.yaml"} <= files.keys(), f"snippets found: {sorted(files)}"
    configmap, patch = files["hookguard-config.yaml"], files["hookguard-patch.yaml"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-app"},
        "spec": {
            "selector": {"matchLabels": {"app": "my-app"}},
            "template": {
                "metadata": {"labels": {"app": "my-app"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/my-app:1.0.0"}]},
            },
        },
    }
    pod, extra = deployment["spec"]["template"]["spec"], patch["spec"]["template"]["spec"]
    for key, value in extra.items():
        if key in ("containers", "initContainers", "volumes"):
            pod.setdefault(key, []).extend(value)
        else:
            pod[key] = value
    if "annotations" in patch["spec"]["template"].get("metadata", {}):
        deployment["spec"]["template"]["metadata"]["annotations"] = patch["spec"]["template"]["metadata"]["annotations"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, obj in (("deployment.yaml", deployment), ("configmap.yaml", configmap)):
            (Path(tmp) / name).write_text(yaml.safe_dump(obj))
        proc = run(["kubernetes-validate", "--strict", "-k", KUBE_VERSION, "--quiet", str(Path(tmp) / "deployment.yaml"), str(Path(tmp) / "configmap.yaml")])
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
        hg = hookguard_container(pod)
        assert hg["ports"] and {p["name"] for p in hg["ports"]} == {"webhooks", "admin"}
        assert hg["readinessProbe"]["httpGet"]["port"] == "admin"
        text = configmap["data"]["config.toml"]
        config = tomllib.loads(text)
        assert config["server"]["admin_listen"].startswith("0.0.0.0:"), "admin must be reachable by the kubelet"
        files_, envs = secret_refs(config)
        mounts = [m["mountPath"] for m in hg["volumeMounts"]]
        for file in files_:
            assert any(file.startswith(m.rstrip("/") + "/") for m in mounts), f"{file} not mounted"
            local = Path(tmp) / file.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text("test-secret\n")
            text = text.replace(file, str(local))
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(text)
        env = {"PATH": os.environ.get("PATH", "")}
        env.update({name: "test-value" for name in envs})
        proc = run([str(HOOKGUARD_BIN), "check", "--config", str(cfg)], env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def main() -> int:
    # The SDK's INFO lines (e.g. that files/alerts.yaml is a symlink it
    # followed) are noise here; its warnings still show.
    logging.basicConfig(level=logging.WARNING, format="helm: %(message)s")
    helm.enable_logging(logging.WARNING)
    check("helm-python-sdk loads the chart", lambda: chart().metadata)
    if results["failed"]:
        print(f"{results['passed']} passed, {results['failed']} failed")
        return 1
    for label, values in SCENARIOS.items():
        scenario_checks(label, values)
    check("checksum/config changes with the config and only with it", checksum_follows_config)
    check("terminationGracePeriodSeconds follows shutdown_grace; too short is refused", grace_follows_shutdown_grace)
    check("refuses config.server.listen (the chart owns ports)", refuses({"config": {"server": {"listen": "0.0.0.0:1"}}}, "config.server.listen"))
    check("refuses an empty route list", refuses({"config": {"routes": []}}, "config.routes"))
    check("refuses config.egress.listen (the chart owns ports)", refuses({"config": {"egress": {"listen": "0.0.0.0:8001", "routes": []}}}, "config.egress.listen"))
    check("refuses an egress secretName without key", refuses({"config": {"egress": {"routes": [{"name": "p", "prefix": "/p", "upstream": "https://p.example", "auth": {"bearer": {"secretName": "s"}}}]}}}, "key is required"))
    check("refuses a secretName without key", refuses({"config": {"routes": [{"name": "a", "path": "/a", "scheme": "github", "secrets": [{"secretName": "s"}]}]}}, "key is required"))
    check("refuses autoscaling without an app CPU request", refuses({"autoscaling": {"enabled": True}}, "app.resources.requests.cpu"))
    check("refuses an embedded queue with more than one replica", refuses({**QUEUE_ON, "replicaCount": 2}, "queue.enabled: the embedded queue is one file for one pod"))
    check("refuses a redis queue without a Redis", refuses({**QUEUE_ON, "queue": {"enabled": True, "store": "redis"}}, "queue.store: redis needs queue.redisUrl"))
    check("refuses an unknown queue.store", refuses({**QUEUE_ON, "queue": {"enabled": True, "store": "sqlite"}}, 'queue.store: "sqlite" is not embedded or redis'))
    check("files/alerts.yaml is deploy/prometheus/alerts.yaml", alerts_single_source)
    check("yamllint --strict values.yaml Chart.yaml (default rules)", yamllint_values)
    check("hadolint Dockerfile (no findings)", hadolint)
    check("Dockerfile agrees with the chart (USER, EXPOSE, config path, build context)", dockerfile_agrees_with_chart)
    check("README values table covers every value", readme_documents_values)
    check("README snippet for an existing Deployment validates and its config passes hookguard check", readme_sidecar_snippet)

    summary = f"{results['passed']} passed, {results['failed']} failed"
    if results["skipped"]:
        summary += f", {results['skipped']} skipped"
    print(summary)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
