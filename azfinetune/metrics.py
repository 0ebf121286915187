"""An Azure ML job's MLflow metrics (latest values and loss history), read with MLflow's own client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azfinetune.errors import LocalRunError, NotFoundError

__all__ = ["LOSS_KEYS", "job_metrics", "tracking_uri"]

#: The loss series the training code logs (the Hugging Face MLflow callback's names) and report plots.
LOSS_KEYS = ("loss", "eval_loss")


def tracking_uri(ml_client: Any) -> str:
    """The workspace's MLflow tracking URI as an https URL MLflow's REST client can use.

    Azure ML hands out `azureml://<region>.api.azureml.ms/mlflow/v1.0/...`; the azureml-mlflow plugin maps
    that scheme to https and adds a bearer token, which is all this does (with MLFLOW_TRACKING_TOKEN)."""
    workspace = ml_client.workspaces.get(ml_client.workspace_name)
    uri = str(getattr(workspace, "mlflow_tracking_uri", "") or "")
    if not uri:
        raise NotFoundError(f"workspace {ml_client.workspace_name} reports no MLflow tracking URI")
    return "https://" + uri.split("://", 1)[1] if uri.startswith("azureml://") else uri


@contextmanager
def _token(credential: Any) -> Iterator[None]:
    previous = os.environ.get("MLFLOW_TRACKING_TOKEN")
    os.environ["MLFLOW_TRACKING_TOKEN"] = credential.get_token("https://ml.azure.com/.default").token
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        else:
            os.environ["MLFLOW_TRACKING_TOKEN"] = previous


def job_metrics(ml_client: Any, credential: Any, job_name: str) -> dict[str, Any]:
    """{metric: latest value, ..., "loss_history": [{step, loss?, eval_loss?}]} of a job's MLflow run."""
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise LocalRunError(
            "reading an Azure ML job's metrics needs mlflow", hint="pip install 'azfinetune[train]'"
        ) from None
    client = MlflowClient(tracking_uri=tracking_uri(ml_client))
    with _token(credential):
        try:
            run = client.get_run(job_name)
        except MlflowException as error:
            raise NotFoundError(
                f"no MLflow run for job {job_name}: {str(error).splitlines()[0]}", job_name=job_name
            ) from None
        metrics: dict[str, Any] = dict(run.data.metrics)
        by_step: dict[int, dict[str, Any]] = {}
        for key in LOSS_KEYS:
            if key not in metrics:
                continue
            for point in client.get_metric_history(job_name, key):
                by_step.setdefault(int(point.step), {"step": int(point.step)})[key] = float(point.value)
    metrics["loss_history"] = [by_step[step] for step in sorted(by_step)]
    metrics.setdefault("title", job_name)
    return metrics
