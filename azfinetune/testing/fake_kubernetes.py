"""FakeKubernetes: the parts of a Kubernetes API server a Kaito tuning job touches, served on 127.0.0.1.

The real `kubernetes` client (kubernetes.client.ApiClient with a Configuration whose host is `fake.url`, or a
kubeconfig the fake writes) talks to it unchanged. It serves ConfigMaps (v1), kaito.sh Workspaces (v1beta1 and
v1alpha1; checked on create with the Workspace CRD's openAPIV3Schema and Kaito's admission rules, as the API server
and Kaito's webhook do: 422 Invalid), batch/v1 Jobs and the Pods they run, with the pods' logs. A name that exists
is 409 AlreadyExists; a namespace that does not is 404. Each GET of a Workspace moves its tuning one step along
`progression` (ResourceReady, JobStarted, WorkspaceSucceeded conditions, as Kaito's controller sets them): when the
job starts, the fake makes the batch Job named after the Workspace and its pod, whose main container (named after
the Workspace too) logs like Kaito's trainer. Deleting a Workspace deletes its Job and pods (owner references).

Faults: `fail(status)` answers with a Kubernetes Status instead, `lose()` carries a request out and then closes the
connection without answering, `drop()` closes it without carrying it out, `chaos(rate)` does either at random.

Under pytest-socket, mark the test `@pytest.mark.allow_hosts(["127.0.0.1"])`."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from azfinetune.testing._loopback import LoopbackRequest, LoopbackService

__all__ = [
    "DEFAULT_KAITO_PROGRESSION",
    "FakeKubernetes",
    "KubeFault",
    "KubeRequest",
]

#: The steps a tuning Workspace goes through, one per GET of it (or `advance`).
DEFAULT_KAITO_PROGRESSION: tuple[str, ...] = ("Pending", "ResourceReady", "JobStarted", "Succeeded")
_STEPS = frozenset({"Pending", "ResourceReady", "JobStarted", "Succeeded", "Failed"})
_WORKSPACE_LABEL = "kaito.sh/workspace"
_JOB_LABEL = "batch.kubernetes.io/job-name"
FaultKind = Literal["status", "lost", "drop"]
Answer = tuple[int, dict[str, str], bytes]

_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("configmaps", re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps(?:/(?P<name>[^/]+))?$")),
    ("pods", re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods(?:/(?P<name>[^/]+))?(?P<log>/log)?$")),
    ("jobs", re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/jobs(?:/(?P<name>[^/]+))?$")),
    (
        "workspaces",
        re.compile(
            r"^/apis/kaito\.sh/(?P<version>v1beta1|v1alpha1)(?:/namespaces/(?P<ns>[^/]+))?/workspaces"
            r"(?:/(?P<name>[^/]+))?$"
        ),
    ),
]


@dataclass(repr=False)
class KubeRequest(LoopbackRequest):
    """One request the fake saw, and what it answered (`status` None: the connection was closed instead)."""


@dataclass
class KubeFault:
    """A fault for the next `times` requests matching method and path (a regex searched in the path)."""

    kind: FaultKind
    method: str | None = None
    path: re.Pattern[str] | None = None
    status: int = 503
    times: int | None = 1
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not self.path.search(path))


@dataclass
class _Tuning:
    """Where a Workspace's tuning is: its remaining steps and the step it is at."""

    steps: list[str]
    step: str = "Created"
    reason: str | None = None
    logs: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubernetes(LoopbackService):
    """A Kubernetes API server with Kaito installed, on http://127.0.0.1:<port>.

        with FakeKubernetes(namespaces=("default", "tuning")) as cluster:
            api = cluster.api_client()                   # kubernetes.client.ApiClient on the fake
            path = cluster.write_kubeconfig(tmp_path)    # or a kubeconfig with context `fake`

    `token`: the bearer token the server takes (None: any). `node_auto_provisioning`: Kaito's feature gate (on by
    default: instanceType required)."""

    def __init__(
        self,
        *,
        namespaces: Sequence[str] = ("default",),
        token: str | None = "fake-token",
        progression: Sequence[str] = DEFAULT_KAITO_PROGRESSION,
        node_auto_provisioning: bool = True,
        lifetime_s: float = 600.0,
        seed: int = 0,
    ) -> None:
        unknown = set(progression) - _STEPS
        if unknown:
            raise ValueError(f"unknown steps {sorted(unknown)}; use {sorted(_STEPS)}")
        self.namespaces = set(namespaces)
        self.token = token
        self.progression = list(progression)
        self.node_auto_provisioning = node_auto_provisioning
        super().__init__(lifetime_s=lifetime_s)
        self.requests: list[KubeRequest] = []
        # (kind, namespace, name) -> object
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.tunings: dict[tuple[str, str], _Tuning] = {}
        self._faults: list[KubeFault] = []
        self._chaos_rate = 0.0
        self._chaos_kinds: tuple[str, ...] = ()
        self._rng = random.Random(seed)
        self._seed = seed
        self._version = 1000
        self._lock = threading.RLock()

    # ---------------------------------------------------------------------------------------------- lifecycle

    service_name = "FakeKubernetes"

    request_type = KubeRequest

    def configuration(self) -> Any:
        """A kubernetes.client.Configuration for this server (host and bearer token)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        if self.token:
            configuration.api_key = {"BearerToken": self.token}  # kubernetes >= 36 (older: "authorization")
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return configuration

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient on this server."""
        from kubernetes import client

        return client.ApiClient(self.configuration())

    def write_kubeconfig(self, folder: Path, *, context: str = "fake", namespace: str = "default") -> Path:
        """A kubeconfig whose context `context` reaches this server (what `kubectl config` would write)."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "fake-cluster", "user": "fake-user", "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        path = Path(folder) / "kubeconfig"
        path.write_text(json.dumps(config))
        return path

    # ---------------------------------------------------------------------------------------------- faults

    def fail(
        self, status: int = 503, *, method: str | None = None, path: str | None = None, times: int | None = 1
    ) -> KubeFault:
        """Answer the next `times` matching requests with a Kubernetes Status of `status` instead."""
        return self._add(KubeFault("status", method, _pattern(path), status, times))

    def lose(self, *, method: str | None = None, path: str | None = None, times: int | None = 1) -> KubeFault:
        """Carry out the next `times` matching requests, then close the connection without answering."""
        return self._add(KubeFault("lost", method, _pattern(path), times=times))

    def drop(self, *, method: str | None = None, path: str | None = None, times: int | None = 1) -> KubeFault:
        """Close the connection of the next `times` matching requests without carrying them out."""
        return self._add(KubeFault("drop", method, _pattern(path), times=times))

    def chaos(
        self, rate: float, *, kinds: Sequence[str] = ("409", "500", "503", "lost", "drop"), seed: int = 0
    ) -> None:
        """From now on, fail a share `rate` of all requests with one of `kinds` (status codes, "lost", "drop"),
        drawn from a seeded generator. A chaos 409 answers AlreadyExists for a create without making anything
        (an API server that saw a retried request); on other verbs it is a Conflict."""
        self._chaos_rate = rate
        self._chaos_kinds = tuple(kinds)
        self._rng = random.Random(seed)

    def calm(self) -> None:
        self._chaos_rate = 0.0

    def _add(self, fault: KubeFault) -> KubeFault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str) -> KubeFault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.fired += 1
                return fault
        if self._chaos_rate and self._rng.random() < self._chaos_rate:
            kind = self._rng.choice(self._chaos_kinds)
            if kind in ("lost", "drop"):
                return KubeFault(kind)  # type: ignore[arg-type]
            return KubeFault("status", status=int(kind))
        return None

    # ---------------------------------------------------------------------------------------------- inspection

    def workspaces(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every Workspace (of a namespace), in creation order."""
        return [
            obj
            for (kind, ns, _), obj in self.objects.items()
            if kind == "workspaces" and (namespace is None or ns == namespace)
        ]

    def config_maps(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj
            for (kind, ns, _), obj in self.objects.items()
            if kind == "configmaps" and (namespace is None or ns == namespace)
        ]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def set_progression(
        self, steps: Sequence[str], *, namespace: str | None = None, name: str | None = None
    ) -> None:
        """The steps Workspaces created from now on (or one Workspace) go through."""
        with self._lock:
            if name is None:
                self.progression = list(steps)
            else:
                assert namespace is not None
                self.tunings[(namespace, name)].steps = list(steps)

    def advance(self, namespace: str, name: str, step: str, *, reason: str | None = None) -> None:
        """Move a Workspace's tuning to `step` now (its Job and pod with it)."""
        with self._lock:
            tuning = self.tunings[(namespace, name)]
            if step == "Failed":
                tuning.reason = reason or "the trainer exited with code 1: CUDA out of memory"
            self._enter(namespace, name, step)
            tuning.steps = []

    # ---------------------------------------------------------------------------------------------- serving

    def handle(self, request: KubeRequest) -> Answer | None:
        """Answer one request: (status, headers, body), or None to close the connection without an answer."""
        with self._lock:
            self.requests.append(request)
            fault = self._fault_for(request.method, request.path)
            if fault is not None and fault.kind == "drop":
                request.fault = "drop"
                return None
            if fault is not None and fault.kind == "status":
                request.fault = f"status:{fault.status}"
                request.status = fault.status
                if fault.status == 409 and request.method == "POST":
                    return _status(
                        409, "AlreadyExists", "the object has been created by a concurrent request"
                    )
                reasons = {
                    409: "Conflict",
                    429: "TooManyRequests",
                    500: "InternalError",
                    503: "ServiceUnavailable",
                }
                reason = reasons.get(fault.status, "InternalError")
                return _status(fault.status, reason, f"fake fault: {reason}")
            answer = self._route(request)
            request.status = answer[0]
            if fault is not None:
                request.fault = "lost"
                return None
            return answer

    def _route(self, request: KubeRequest) -> Answer:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        for kind, pattern in _ROUTES:
            match = pattern.match(request.path)
            if match is None:
                continue
            groups = match.groupdict()
            namespace, name = groups.get("ns"), groups.get("name")
            if namespace is not None and namespace not in self.namespaces:
                return _status(404, "NotFound", f'namespaces "{namespace}" not found')
            if kind == "pods" and groups.get("log"):
                return self._log(str(namespace), str(name), request)
            if name is None:
                if request.method == "GET":
                    return self._list(kind, namespace, request, groups.get("version"))
                if request.method == "POST" and kind in ("configmaps", "workspaces"):
                    return self._create(kind, str(namespace), request, groups.get("version"))
                return _status(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}")
            assert namespace is not None
            if request.method == "GET":
                return self._read(kind, namespace, name)
            if request.method == "DELETE":
                return self._delete(kind, namespace, name)
            return _status(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}/{name}")
        return _status(404, "NotFound", f"the server could not find the requested resource ({request.path})")

    # -- objects ------------------------------------------------------------------------------------------------

    def _meta(self, obj: dict[str, Any], namespace: str) -> None:
        metadata = obj.setdefault("metadata", {})
        metadata["namespace"] = namespace
        self._version += 1
        metadata["resourceVersion"] = str(self._version)
        metadata["uid"] = hashlib.sha256(f"{self._seed}:{self._version}".encode()).hexdigest()[:32]
        metadata["creationTimestamp"] = _now()
        metadata.setdefault("generation", 1)

    def _create(self, kind: str, namespace: str, request: KubeRequest, version: str | None) -> Answer:
        body = request.json
        if not isinstance(body, dict):
            return _status(400, "BadRequest", "the request body is not a JSON object")
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if metadata.get("namespace") not in (None, namespace):
            return _status(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if kind == "configmaps":
            problem = _config_map_problem(body)
            if problem:
                return _invalid("ConfigMap", "", str(name), [problem])
        if kind == "workspaces":
            problems = self._admit(body, namespace, version)
            if problems:
                return _invalid("Workspace", "kaito.sh", str(name), problems)
        if not name:
            return _status(422, "Invalid", "metadata.name: Required value")
        if (kind, namespace, name) in self.objects:
            what = "workspaces.kaito.sh" if kind == "workspaces" else kind
            return _status(409, "AlreadyExists", f'{what} "{name}" already exists', name=name, kind=kind)
        obj = copy.deepcopy(body)
        self._meta(obj, namespace)
        if kind == "workspaces":
            obj["apiVersion"] = f"kaito.sh/{version}"
            self.tunings[(namespace, name)] = _Tuning(list(self.progression))
        self.objects[(kind, namespace, name)] = obj
        return _json(201, obj)

    def _admit(self, body: dict[str, Any], namespace: str, version: str | None) -> list[tuple[str, str]]:
        from azfinetune.targets.kaito import validate_workspace

        if body.get("apiVersion") != f"kaito.sh/{version}":
            return [("apiVersion", f"must be kaito.sh/{version} on this path")]
        config_maps = {
            (ns, name): obj for (kind, ns, name), obj in self.objects.items() if kind == "configmaps"
        }
        body = {**body, "metadata": {**(body.get("metadata") or {}), "namespace": namespace}}
        found = validate_workspace(
            body, config_maps=config_maps, node_auto_provisioning=self.node_auto_provisioning
        )
        return [(p.path, p.message) for p in found if p.severity == "error"]

    def _read(self, kind: str, namespace: str, name: str) -> Answer:
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            return _not_found(kind, name)
        if kind == "workspaces":
            self._step(namespace, name)
        return _json(200, obj)

    def _list(self, kind: str, namespace: str | None, request: KubeRequest, version: str | None) -> Answer:
        selector = request.query.get("labelSelector", "")
        items = [
            obj
            for (k, ns, _), obj in self.objects.items()
            if k == kind and (namespace is None or ns == namespace) and _selects(selector, obj)
        ]
        list_kind = {"configmaps": "ConfigMapList", "pods": "PodList", "jobs": "JobList"}.get(
            kind, "WorkspaceList"
        )
        api = {"jobs": "batch/v1", "workspaces": f"kaito.sh/{version}"}.get(kind, "v1")
        return _json(
            200,
            {
                "apiVersion": api,
                "kind": list_kind,
                "metadata": {"resourceVersion": str(self._version)},
                "items": items,
            },
        )

    def _delete(self, kind: str, namespace: str, name: str) -> Answer:
        obj = self.objects.pop((kind, namespace, name), None)
        if obj is None:
            return _not_found(kind, name)
        if kind == "workspaces":
            self.tunings.pop((namespace, name), None)
            for key in [k for k, o in self.objects.items() if _owned_by(o, name) and k[1] == namespace]:
                self.objects.pop(key)
            return _json(200, obj)
        return _json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _log(self, namespace: str, pod: str, request: KubeRequest) -> Answer:
        obj = self.objects.get(("pods", namespace, pod))
        if obj is None:
            return _not_found("pods", pod)
        containers = [c["name"] for c in obj["spec"]["containers"]]
        container = request.query.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            return _status(
                400,
                "BadRequest",
                f"a container name must be specified for pod {pod}, choose one of: [{' '.join(containers)}]",
            )
        if container not in containers:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        workspace = obj["metadata"]["labels"].get(_WORKSPACE_LABEL, "")
        tuning = self.tunings.get((namespace, workspace))
        lines = tuning.logs if tuning is not None and container == workspace else []
        tail = request.query.get("tailLines")
        if tail:
            lines = lines[-int(tail) :]
        text = "".join(line + "\n" for line in lines)
        return 200, {"Content-Type": "text/plain"}, text.encode()

    # -- Kaito's controller ----------------------------------------------------------------------------------

    def _step(self, namespace: str, name: str) -> None:
        tuning = self.tunings.get((namespace, name))
        if tuning is None or not tuning.steps:
            return
        self._enter(namespace, name, tuning.steps.pop(0))

    def _enter(self, namespace: str, name: str, step: str) -> None:
        tuning = self.tunings[(namespace, name)]
        workspace = self.objects[("workspaces", namespace, name)]
        if step in ("JobStarted", "Succeeded", "Failed") and ("jobs", namespace, name) not in self.objects:
            self._start_job(namespace, name, workspace, tuning)
        tuning.step = step
        generation = workspace["metadata"].get("generation", 1)
        status = workspace.setdefault("status", {})
        conditions: dict[str, dict[str, Any]] = {c["type"]: c for c in status.get("conditions", [])}

        def condition(kind: str, value: str, reason: str, message: str) -> None:
            old = conditions.get(kind)
            changed = old is None or old["status"] != value
            conditions[kind] = {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": _now() if changed else old["lastTransitionTime"],  # type: ignore[index]
            }

        started = step in ("JobStarted", "Succeeded", "Failed")
        if step != "Pending":
            condition(
                "ResourceReady", "True", "workspaceResourceStatusSuccess", "workspace resource is ready"
            )
        if step == "Failed":
            condition("JobStarted", "False", "WorkspaceTuningJobStatusFailed", "tuning job failed")
            condition("WorkspaceSucceeded", "False", "workspaceFailed", f"tuning job failed: {tuning.reason}")
            status["state"] = "Failed"
        elif started:
            condition("JobStarted", "True", "WorkspaceTuningJobStatusStarted", "Tuning job has started")
            if step == "Succeeded":
                condition("WorkspaceSucceeded", "True", "workspaceSucceeded", "workspace succeeds")
                status["state"] = "Succeeded"
            else:
                condition(
                    "WorkspaceSucceeded",
                    "False",
                    "workspacePending",
                    "workspace has not completed yet, tuning job is running",
                )
                status["state"] = "Running"
        else:
            condition("JobStarted", "False", "WorkspaceTuningJobStatusPending", "Tuning job has not started")
            condition(
                "WorkspaceSucceeded",
                "False",
                "workspacePending",
                "workspace is initializing, tuning job has not started",
            )
            status["state"] = "Pending"
        status["conditions"] = list(conditions.values())
        if step != "Pending" and workspace.get("resource", {}).get("instanceType"):
            status["workerNodes"] = [f"aks-ws{hashlib.sha256(name.encode()).hexdigest()[:6]}-0"]
        self._job_status(namespace, name, step, tuning)

    def _start_job(self, namespace: str, name: str, workspace: dict[str, Any], tuning: _Tuning) -> None:
        owner = {
            "apiVersion": workspace["apiVersion"],
            "kind": "Workspace",
            "name": name,
            "uid": workspace["metadata"]["uid"],
            "controller": True,
        }
        labels = {_WORKSPACE_LABEL: name}
        containers: list[dict[str, Any]] = [
            {"name": name, "image": "mcr.microsoft.com/aks/kaito/kaito-base:0.2.0"}
        ]
        init: list[dict[str, Any]] = []
        tuning_spec = workspace.get("tuning") or {}
        source, output = tuning_spec.get("input") or {}, tuning_spec.get("output") or {}
        if source.get("urls"):
            init.append({"name": "data-downloader", "image": "curlimages/curl"})
        if output.get("image"):
            containers += [
                {"name": "docker-sidecar", "image": "mcr.microsoft.com/aks/kaito/kaito-oras:0.0.4"}
            ]
            containers += [{"name": "pause", "image": "registry.k8s.io/pause:latest"}]
        template: dict[str, Any] = {
            "metadata": {"labels": labels},
            "spec": {"containers": containers, "restartPolicy": "Never"},
        }
        if init:
            template["spec"]["initContainers"] = init
        job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": dict(labels), "ownerReferences": [owner]},
            "spec": {"template": template, "backoffLimit": 6},
            "status": {},
        }
        self._meta(job, namespace)
        self.objects[("jobs", namespace, name)] = job
        pod_name = f"{name}-{hashlib.sha256((name + str(self._version)).encode()).hexdigest()[:5]}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": {**labels, _JOB_LABEL: name, "job-name": name},
                "ownerReferences": [
                    {**owner, "apiVersion": "batch/v1", "kind": "Job", "uid": job["metadata"]["uid"]}
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending"},
        }
        self._meta(pod, namespace)
        self.objects[("pods", namespace, pod_name)] = pod
        preset = (tuning_spec.get("preset") or {}).get("name", "")
        tuning.logs += [
            f"training_config: loaded /mnt/config/training_config.yaml for {preset}",
            "Model Loaded",
        ]

    def _job_status(self, namespace: str, name: str, step: str, tuning: _Tuning) -> None:
        job = self.objects.get(("jobs", namespace, name))
        if job is None:
            return
        pods = [
            o
            for (k, ns, _), o in self.objects.items()
            if k == "pods" and ns == namespace and _owned_job(o, name)
        ]
        status = job["status"]
        status.setdefault("startTime", _now())
        if step == "JobStarted":
            status["active"] = 1
            phase = "Running"
            if "{'train_loss'" not in " ".join(tuning.logs):
                tuning.logs += [
                    f"{{'loss': {2.1 - 0.3 * i:.4f}, 'epoch': {0.25 * (i + 1):.2f}}}" for i in range(3)
                ]
        elif step == "Succeeded":
            status.pop("active", None)
            status["succeeded"] = 1
            status["completionTime"] = _now()
            status["conditions"] = [{"type": "Complete", "status": "True", "lastTransitionTime": _now()}]
            phase = "Succeeded"
            tuning.logs += [
                "{'train_runtime': 812.4, 'train_loss': 1.5321, 'epoch': 1.0}",
                "Fine-Tuning completed",
            ]
        else:  # Failed
            status.pop("active", None)
            status["failed"] = 1
            status["conditions"] = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "lastTransitionTime": _now(),
                }
            ]
            phase = "Failed"
            tuning.logs.append(f"ERROR {tuning.reason}")
        for pod in pods:
            pod["status"] = {"phase": phase}


# -- helpers -------------------------------------------------------------------------------------------------


def _pattern(path: str | None) -> re.Pattern[str] | None:
    return re.compile(path) if path else None


def _owned_by(obj: Mapping[str, Any], workspace: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(_WORKSPACE_LABEL) == workspace and obj.get("kind") in ("Job", "Pod"))


def _owned_job(obj: Mapping[str, Any], job: str) -> bool:
    return bool(((obj.get("metadata") or {}).get("labels") or {}).get(_JOB_LABEL) == job)


def _selects(selector: str, obj: Mapping[str, Any]) -> bool:
    """Kubernetes label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated (ANDed)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _config_map_problem(body: Mapping[str, Any]) -> tuple[str, str] | None:
    data = body.get("data")
    if data is not None and (
        not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values())
    ):
        return ("data", "must be a map of strings")
    size = len(json.dumps(data or {}).encode())
    if size > 1024 * 1024:
        return ("data", f"Too long: must have at most 1048576 bytes (got {size})")
    return None


def _json(status: int, data: Any) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _status(
    code: int,
    reason: str,
    message: str,
    *,
    name: str | None = None,
    kind: str | None = None,
    causes: Any = None,
) -> Answer:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return _json(code, body)


def _not_found(kind: str, name: str) -> Answer:
    what = "workspaces.kaito.sh" if kind == "workspaces" else ("jobs.batch" if kind == "jobs" else kind)
    return _status(404, "NotFound", f'{what} "{name}" not found', name=name, kind=kind)


def _invalid(kind: str, group: str, name: str, problems: Sequence[tuple[str, str]]) -> Answer:
    causes = [
        {"reason": "FieldValueInvalid", "field": path, "message": message} for path, message in problems
    ]
    text = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    qualified = f"{kind}.{group}" if group else kind
    return _status(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {text}',
        name=name,
        kind=kind,
        causes=causes,
    )
