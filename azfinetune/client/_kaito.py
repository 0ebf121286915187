"""KaitoClient: submit a kaito spec to a Kubernetes cluster once (the official `kubernetes` client: kubeconfig and
context, or in-cluster), then follow, list and cancel its Workspaces — the JobService the CLI's verbs use.

The Workspace's name comes from the spec's content hash, so a second submit finds the first: an existing Workspace
whose spec-hash annotation is the spec's is success (created=False); one with another hash under that name is a
conflict. A lost answer, a 409 or a 5xx is settled by reading the Workspace before trying again, so faults never
make a second Workspace. The tuning runs as the batch Job Kaito names after the Workspace; `logs` reads its pod's
main container (named after the Workspace too). Nothing here prints; `kubernetes` is imported when first used."""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from azfinetune.client._client import _check_offline, _load
from azfinetune.client._errors import redact
from azfinetune.client._results import SPEC_HASH_TAG, SPEC_NAME_TAG, JobEvent, JobInfo, SubmittedJob
from azfinetune.errors import (
    AuthError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    ServiceError,
    SubmitError,
    ThrottledError,
    UserInputError,
)
from azfinetune.spec import FineTuneSpec, KaitoTarget
from azfinetune.targets.kaito import (
    ANNOTATION_RUN,
    ANNOTATION_SPEC_HASH,
    LABEL_MANAGED_BY,
    LABEL_SPEC_NAME,
    MANAGED_BY,
    KaitoJob,
    build_kaito_job,
)

__all__ = ["KaitoClient", "kaito_status"]

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kaito.sh", "v1beta1", "workspaces"
_JOB_LABEL = "batch.kubernetes.io/job-name"
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_ATTEMPTS = 8


def kaito_status(workspace: Mapping[str, Any] | None) -> str:
    """A Workspace's state in azfinetune's words (Azure ML's): Queued, Provisioning, Running, Completed, Failed."""
    if workspace is None:
        return "NotFound"
    status = workspace.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}

    def true(kind: str) -> bool:
        return str((conditions.get(kind) or {}).get("status")) == "True"

    succeeded = conditions.get("WorkspaceSucceeded") or {}
    if true("WorkspaceSucceeded") or status.get("state") == "Succeeded":
        return "Completed"
    if status.get("state") == "Failed" or succeeded.get("reason") == "workspaceFailed":
        return "Failed"
    if true("JobStarted"):
        return "Running"
    if true("ResourceReady"):
        return "Starting"
    if conditions:
        return "Provisioning"
    return "Queued"


def _failure_message(workspace: Mapping[str, Any]) -> str | None:
    """The most telling message of the conditions that say the tuning failed."""
    messages = [
        str(condition.get("message") or condition.get("reason"))
        for condition in (workspace.get("status") or {}).get("conditions") or []
        if condition.get("status") == "False" and "fail" in str(condition.get("reason", "")).lower()
    ]
    return max(messages, key=len) if messages else None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _status_body(error: Any) -> dict[str, Any]:
    import json

    try:
        body = json.loads(getattr(error, "body", None) or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


class KaitoClient:
    """One Kubernetes cluster with Kaito: submit kaito specs (once), follow, list and cancel their Workspaces.

    `api_client`: a kubernetes.client.ApiClient to use; else one is made on first use from `kubeconfig` (default
    $KUBECONFIG or ~/.kube/config) and `context`, or in-cluster. `namespace`: wins over the spec's
    target.namespace and the context's namespace ("default" otherwise). Constructing one makes no network call."""

    def __init__(
        self,
        api_client: Any | None = None,
        *,
        context: str | None = None,
        namespace: str | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = _ATTEMPTS,
    ) -> None:
        self._api_client = api_client
        self.context = context
        self._namespace = namespace
        self.kubeconfig = str(kubeconfig) if kubeconfig is not None else None
        self._sleep = sleep
        self.attempts = attempts
        self._context_namespace: str | None = None

    @classmethod
    def from_config(
        cls,
        *,
        context: str | None = None,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        spec: FineTuneSpec | None = None,
    ) -> KaitoClient:
        """A client for these flags, then the spec's target (context, namespace). No network call."""
        target = spec.target if spec is not None and isinstance(spec.target, KaitoTarget) else None
        return cls(
            context=context or (target.context if target else None),
            namespace=namespace or (target.namespace if target else None),
            kubeconfig=kubeconfig,
        )

    # ---------------------------------------------------------------------------------------------- plumbing

    @property
    def api_client(self) -> Any:
        if self._api_client is None:
            self._api_client = self._connect()
        return self._api_client

    def _connect(self) -> Any:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        path = self.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
        default = Path("~/.kube/config").expanduser()
        if path or default.is_file():
            try:
                contexts, active = config.list_kube_config_contexts(config_file=path)
                chosen = (
                    next((c for c in contexts if c["name"] == self.context), None) if self.context else active
                )
                if self.context and chosen is None:
                    names = ", ".join(c["name"] for c in contexts)
                    raise UserInputError(
                        f"the kubeconfig has no context {self.context!r}",
                        hint=f"its contexts: {names} (kubectl config get-contexts)",
                    )
                self._context_namespace = ((chosen or {}).get("context") or {}).get("namespace")
                return config.new_client_from_config(config_file=path, context=self.context)
            except ConfigException as error:
                raise UserInputError(
                    f"cannot read the kubeconfig: {redact(str(error))}",
                    hint="az aks get-credentials -g <resource-group> -n <cluster> writes one",
                ) from None
        if self.context:
            raise UserInputError(
                f"--context {self.context}: there is no kubeconfig ({default} or $KUBECONFIG)",
                hint="az aks get-credentials -g <resource-group> -n <cluster> writes one",
            )
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            raise UserInputError(
                "no Kubernetes cluster to talk to: no kubeconfig and not running in a cluster",
                hint="az aks get-credentials -g <resource-group> -n <cluster>, or pass --context",
            ) from None
        return client.ApiClient(configuration)

    @property
    def namespace(self) -> str:
        if self._namespace:
            return self._namespace
        if self._api_client is None and self._context_namespace is None:
            with contextlib.suppress(UserInputError):
                self._api_client = self._connect()  # reading the kubeconfig tells the context's namespace
        return self._context_namespace or "default"

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def _call(
        self, what: str, function: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """One API call, retried on 429/5xx and lost connections; Kubernetes' errors as ours."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        for attempt in range(self.attempts):
            try:
                return function(*args, **kwargs)
            except ApiException as error:
                if error.status in _TRANSIENT and attempt + 1 < self.attempts:
                    self._backoff(attempt, what, error.status)
                    continue
                raise self._map(error, what, name) from None
            except HTTPError as error:
                if attempt + 1 < self.attempts:
                    self._backoff(attempt, what, None)
                    continue
                raise ServiceError(
                    f"{what}: cannot reach the cluster ({type(error).__name__})",
                    hint="check the cluster is up and your kubeconfig's server (kubectl cluster-info)",
                ) from None
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, what: str, status: int | None) -> None:
        delay = min(0.5 * 2**attempt, 8.0)
        logger.info("%s: %s, retrying in %.1f s", what, status or "connection lost", delay)
        self._sleep(delay)

    def _map(self, error: Any, what: str, name: str | None) -> Exception:
        body = _status_body(error)
        message = redact(str(body.get("message") or getattr(error, "reason", "") or error))
        status = int(getattr(error, "status", 0) or 0)
        if status in (401, 403):
            return AuthError(
                f"{what}: the cluster refused the credentials ({status}: {message})",
                hint="refresh them (az aks get-credentials ...) or ask for access to the namespace",
                status_code=status,
                job_name=name,
            )
        if status == 404 and 'namespaces "' in message:
            namespace = message.split('"')[1]
            return NotFoundError(
                f"{what}: there is no namespace {namespace} on the cluster",
                hint=f"kubectl create namespace {namespace}, or set target.namespace / --namespace",
                status_code=status,
            )
        if status == 404:
            return NotFoundError(
                f"{what}: {message}",
                hint="is Kaito installed (kubectl get crd workspaces.kaito.sh) and the namespace right (--namespace)?",
                status_code=status,
                job_name=name,
            )
        if status == 422 or status == 400:
            causes = (body.get("details") or {}).get("causes") or []
            detail = "; ".join(
                f"{c.get('field')}: {c.get('message')}" for c in causes if isinstance(c, Mapping)
            )
            return UserInputError(
                f"{what}: Kaito refused it: {redact(detail) or message}",
                hint="azfinetune validate checks the spec offline; this is a cluster-side rule it does not know",
            )
        if status == 429:
            return ThrottledError(f"{what}: the API server kept throttling ({message})", status_code=status)
        if status == 409:
            return ConflictError(f"{what}: {message}", status_code=status, job_name=name)
        return SubmitError(f"{what}: {status} {message}", status_code=status, job_name=name)

    def _read_workspace(self, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call(
                f"reading Workspace {name}",
                self._custom().get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                name=name,
            )
        except NotFoundError as error:
            if "no namespace" in error.message:
                raise
            return None
        return found

    # ---------------------------------------------------------------------------------------------- submit

    def submit(
        self,
        spec_or_path: FineTuneSpec | str,
        *,
        dry_run: bool = False,
        wait: bool = False,
        run_suffix: str | None = None,
        allow_retired: bool = False,
        overrides: Sequence[str] | Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> SubmittedJob:
        """Check, build and apply a kaito spec, once: its ConfigMap, then its Workspace (which Kaito's admission
        checks against the ConfigMap). Every offline check runs first; any error raises and nothing is sent."""
        spec = _load(spec_or_path, overrides)
        if not isinstance(spec.target, KaitoTarget):
            raise UserInputError(
                f"KaitoClient submits target.kind kaito specs, not {spec.target.kind}",
                hint="use FineTuneClient for Azure ML targets",
            )
        report = _check_offline(spec, allow_retired=allow_retired)
        job = build_kaito_job(spec, run_suffix=run_suffix)
        if self._namespace and self._namespace != job.namespace:
            job = _in_namespace(job, self._namespace)
        if dry_run:
            return self._submitted(job, None, created=False, dry_run=True, warnings=report.warnings)
        self._ensure_config_map(job)
        workspace, created = self._create_workspace(job)
        submitted = self._submitted(job, workspace, created=created, warnings=report.warnings)
        if wait:
            submitted.status = self.wait(job.name, timeout=timeout, namespace=job.namespace).status
        return submitted

    def _submitted(
        self,
        job: KaitoJob,
        workspace: Mapping[str, Any] | None,
        *,
        created: bool,
        dry_run: bool = False,
        warnings: Sequence[Any] = (),
    ) -> SubmittedJob:
        return SubmittedJob(
            name=job.name,
            kind="kaito",
            spec_name=job.spec_name,
            spec_hash=job.spec_hash,
            status=None if workspace is None else kaito_status(workspace),
            studio_url=None,
            created=created,
            dry_run=dry_run,
            warnings=list(warnings),
            job=job,
        )

    def _ensure_config_map(self, job: KaitoJob) -> None:
        core = self._core()
        what = f"creating ConfigMap {job.name} in namespace {job.namespace}"
        for _ in range(self.attempts):
            existing = self._read_config_map(job)
            if existing is not None:
                if (existing.get("data") or {}) != job.config_map["data"]:
                    raise ConflictError(
                        f"ConfigMap {job.name} in namespace {job.namespace} exists with other content than the "
                        f"spec's (spec hash {job.spec_hash[:12]})",
                        hint=f"delete it (kubectl delete configmap {job.name} -n {job.namespace}) or rename the spec",
                        job_name=job.name,
                    )
                return
            try:
                self._call(
                    what, core.create_namespaced_config_map, job.namespace, job.config_map, name=job.name
                )
                return
            except ConflictError:
                continue  # made by a lost or concurrent request: read it again
        raise SubmitError(f"{what}: it neither appeared nor could be created", job_name=job.name)

    def _read_config_map(self, job: KaitoJob) -> dict[str, Any] | None:
        core = self._core()
        try:
            response = self._call(
                f"reading ConfigMap {job.name}",
                core.read_namespaced_config_map,
                job.name,
                job.namespace,
                _preload_content=False,
                name=job.name,
            )
        except NotFoundError as error:
            if "no namespace" in error.message:
                raise
            return None
        import json

        found: dict[str, Any] = json.loads(response.data)
        return found

    def _create_workspace(self, job: KaitoJob) -> tuple[dict[str, Any], bool]:
        custom = self._custom()
        what = f"creating Workspace {job.name} in namespace {job.namespace}"
        sent = False
        for _ in range(self.attempts):
            existing = self._read_workspace(job.name, job.namespace)
            if existing is not None:
                self._check_same(job, existing)
                if not sent:
                    logger.info("Workspace %s already exists; not submitting again", job.name)
                return existing, sent
            try:
                sent = True
                created: dict[str, Any] = self._call(
                    what,
                    custom.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    job.namespace,
                    PLURAL,
                    job.workspace,
                    name=job.name,
                )
                return created, True
            except ConflictError:
                continue  # AlreadyExists: a lost answer or a concurrent submit made it; read it
            except ServiceError as error:
                if "cannot reach" not in error.message:
                    raise
                continue
        raise SubmitError(f"{what}: it neither appeared nor could be created", job_name=job.name)

    @staticmethod
    def _check_same(job: KaitoJob, existing: Mapping[str, Any]) -> None:
        metadata = existing.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        theirs = (annotations.get(ANNOTATION_SPEC_HASH), annotations.get(ANNOTATION_RUN))
        ours = (job.spec_hash, (job.workspace["metadata"].get("annotations") or {}).get(ANNOTATION_RUN))
        if theirs != ours:
            found = str(theirs[0])[:12] if theirs[0] else "none (not made by azfinetune)"
            raise ConflictError(
                f"Workspace {job.name} in namespace {job.namespace} exists and was made from another spec "
                f"(its spec hash {found}, this spec's {job.spec_hash[:12]})",
                hint=f"delete it (azfinetune cancel {job.name} --namespace {job.namespace}, or kubectl delete "
                "workspace ...) or give the spec another name",
                job_name=job.name,
            )

    # ---------------------------------------------------------------------------------------------- follow

    def info(self, workspace: Mapping[str, Any]) -> JobInfo:
        metadata = workspace.get("metadata") or {}
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        tags = {str(k): str(v) for k, v in labels.items()}
        if labels.get(LABEL_SPEC_NAME):
            tags[SPEC_NAME_TAG] = str(labels[LABEL_SPEC_NAME])
        if annotations.get(ANNOTATION_SPEC_HASH):
            tags[SPEC_HASH_TAG] = str(annotations[ANNOTATION_SPEC_HASH])
        status = kaito_status(workspace)
        return JobInfo(
            name=str(metadata.get("name")),
            status=status,
            kind="kaito",
            display_name=None,
            experiment_name=labels.get(LABEL_SPEC_NAME),
            created_at=_parse_time(metadata.get("creationTimestamp")),
            studio_url=None,
            compute=(workspace.get("resource") or {}).get("instanceType"),
            tags=tags,
            error=_failure_message(workspace) if status == "Failed" else None,
            job=dict(workspace),
        )

    def get(self, name: str, *, namespace: str | None = None) -> JobInfo:
        namespace = namespace or self.namespace
        workspace = self._read_workspace(name, namespace)
        if workspace is None:
            raise NotFoundError(
                f"no Workspace {name} in namespace {namespace}",
                hint="azfinetune list --namespace ... shows the Workspaces azfinetune made",
                job_name=name,
            )
        return self.info(workspace)

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        spec_name: str | None = None,
        since: datetime | timedelta | None = None,
        limit: int | None = None,
        all_jobs: bool = False,
    ) -> builtins.list[JobInfo]:
        selector = [] if all_jobs else [f"{LABEL_MANAGED_BY}={MANAGED_BY}"]
        if spec_name:
            selector.append(f"{LABEL_SPEC_NAME}={spec_name}")
        listing = self._call(
            f"listing Workspaces in namespace {self.namespace}",
            self._custom().list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            label_selector=",".join(selector),
        )
        infos = [self.info(item) for item in listing.get("items") or [] if (item.get("tuning") or all_jobs)]
        wanted = {status} if isinstance(status, str) else set(status or [])
        if wanted:
            infos = [i for i in infos if i.status in wanted]
        if since is not None:
            cutoff = datetime.now(timezone.utc) - since if isinstance(since, timedelta) else since
            infos = [i for i in infos if i.created_at is not None and i.created_at >= cutoff]
        infos.sort(key=lambda i: i.created_at or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
        return infos[:limit] if limit else infos

    def cancel(self, name: str, *, timeout: float = 300.0, namespace: str | None = None) -> JobInfo:
        """Delete the Workspace (Kaito's Job and pod go with it) and its ConfigMap; a finished one stays."""
        namespace = namespace or self.namespace
        info = self.get(name, namespace=namespace)
        if info.terminal:
            return info
        self._call(
            f"deleting Workspace {name}",
            self._custom().delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            name=name,
        )
        config_map = self._read_config_map_named(name, namespace)
        if (
            config_map is not None
            and (config_map.get("metadata") or {}).get("labels", {}).get(LABEL_MANAGED_BY) == MANAGED_BY
        ):
            with contextlib.suppress(NotFoundError):
                self._call(
                    f"deleting ConfigMap {name}", self._core().delete_namespaced_config_map, name, namespace
                )
        return JobInfo(
            name=info.name,
            status="Canceled",
            kind=info.kind,
            display_name=None,
            experiment_name=info.experiment_name,
            created_at=info.created_at,
            studio_url=None,
            compute=info.compute,
            tags=info.tags,
            job=info.job,
        )

    def _read_config_map_named(self, name: str, namespace: str) -> dict[str, Any] | None:
        import json

        try:
            response = self._call(
                f"reading ConfigMap {name}",
                self._core().read_namespaced_config_map,
                name,
                namespace,
                _preload_content=False,
            )
        except NotFoundError:
            return None
        found: dict[str, Any] = json.loads(response.data)
        return found

    def wait(
        self,
        name: str,
        *,
        timeout: float | None = 24 * 3600.0,
        poll_interval: float = 30.0,
        on_status: Callable[[str | None], None] | None = None,
        namespace: str | None = None,
    ) -> JobInfo:
        """Poll the Workspace until its tuning finishes. Failed → JobFailedError with Kaito's message."""
        start = time.monotonic()
        last: str | None = None
        while True:
            info = self.get(name, namespace=namespace)
            if on_status is not None and info.status != last:
                on_status(info.status)
            last = info.status
            if info.status == "Failed":
                raise JobFailedError(
                    f"job {name} failed: {info.error or 'the tuning Job failed'}",
                    hint=f"azfinetune logs {name} --namespace {namespace or self.namespace}",
                    job_name=name,
                )
            if info.terminal:
                return info
            if timeout is not None and time.monotonic() - start >= timeout:
                raise ServiceError(
                    f"job {name} is still {info.status} after {timeout:g} s",
                    hint=f"it keeps running: `azfinetune status {name}`, or `azfinetune cancel {name}`",
                    job_name=name,
                )
            self._sleep(poll_interval)

    def logs(self, name: str, *, namespace: str | None = None, tail: int | None = None) -> str:
        """The tuning Job's pod's main container log ('' before the Job's pod exists)."""
        namespace = namespace or self.namespace
        core = self._core()
        pods = self._call(
            f"listing the pods of Job {name}",
            core.list_namespaced_pod,
            namespace,
            label_selector=f"{_JOB_LABEL}={name}",
            name=name,
        )
        items = sorted(
            pods.items or [],
            key=lambda p: p.metadata.creation_timestamp or datetime.min.replace(tzinfo=timezone.utc),
        )
        if not items:
            return ""
        pod = items[-1]
        containers = [c.name for c in (pod.spec.containers or [])]
        container = name if name in containers else (containers[0] if containers else None)
        kwargs: dict[str, Any] = {"container": container, "_preload_content": False}
        if tail:
            kwargs["tail_lines"] = tail
        response = self._call(
            f"reading the log of pod {pod.metadata.name}",
            core.read_namespaced_pod_log,
            pod.metadata.name,
            namespace,
            name=name,
            **kwargs,
        )
        data = response.data
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    def stream(
        self,
        name: str,
        *,
        follow: bool = True,
        timeout: float | None = None,
        poll_interval: float = 15.0,
        raise_on_failure: bool = True,
        namespace: str | None = None,
    ) -> Iterator[JobEvent]:
        """Status changes and the trainer's log lines as they appear, until the tuning finishes (`follow`) or once."""
        start = time.monotonic()
        seen = 0
        last: str | None = None
        pod_file = f"{name} (the tuning Job's pod)"
        while True:
            info = self.get(name, namespace=namespace)
            if info.status != last:
                last = info.status
                yield JobEvent("status", name, info.status)
            lines = self.logs(name, namespace=namespace).splitlines()
            for line in lines[seen:]:
                yield JobEvent("log", name, info.status, text=line, log_file=pod_file)
            seen = max(seen, len(lines))
            if not follow:
                return
            if info.terminal:
                break
            if timeout is not None and time.monotonic() - start >= timeout:
                return
            self._sleep(poll_interval)
        if raise_on_failure and info.status == "Failed":
            raise JobFailedError(f"job {name} failed: {info.error or 'the tuning Job failed'}", job_name=name)


def _in_namespace(job: KaitoJob, namespace: str) -> KaitoJob:
    """The job in another namespace (--namespace wins over the spec's)."""
    import copy

    config_map, workspace = copy.deepcopy(job.config_map), copy.deepcopy(job.workspace)
    config_map["metadata"]["namespace"] = workspace["metadata"]["namespace"] = namespace
    return KaitoJob(
        name=job.name,
        namespace=namespace,
        context=job.context,
        spec_name=job.spec_name,
        spec_hash=job.spec_hash,
        preset=job.preset,
        config_map=config_map,
        workspace=workspace,
        disk=job.disk,
    )
