"""Progress lines for the parent process (AZFT_PROGRESS / AZFT_DONE), MLflow set-up, metrics.json."""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from azft_contract.progress import PROGRESS_PREFIX, finite, format_progress_line

log = logging.getLogger("finetune")

#: What TRL's DPOTrainer and ORPOTrainer log per step besides the loss (MLflow keeps the names as they are).
PREFERENCE_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def emit(prefix: str, payload: dict[str, Any]) -> None:
    """One machine-readable line on stdout (azft_contract.progress): the prefix, then one JSON object."""
    sys.stdout.write(format_progress_line(prefix, payload) + "\n")
    sys.stdout.flush()


def setup_mlflow(output_dir: Path) -> str | None:
    """Log to Azure ML's tracking (MLFLOW_TRACKING_URI, set by the service), else a file store in output."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = (output_dir / "mlruns").resolve().as_uri()
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "azfinetune")
        # MLflow 3 refuses new file stores unless asked; a local run wants no database server.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # The HF callback would otherwise upload every checkpoint as an artifact.
    os.environ.setdefault("HF_MLFLOW_LOG_ARTIFACTS", "false")
    # MLflow's async logger otherwise polls its queue with a 1 s timeout, and ending the run waits out that
    # poll (about 1 s per job); with a buffer it sleeps on an event that ending the run sets, and sends what
    # arrived in that second as one batch.
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")
    try:
        import mlflow

        mlflow.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default")
    except Exception as exc:  # tracking is a convenience: never fail training over it
        log.warning("MLflow tracking at %s is unavailable (%s); metrics go to metrics.json only", uri, exc)
        return None
    return uri


def is_local_store(uri: str | None) -> bool:
    """A file store on this machine (the fallback above, or a path), as opposed to Azure ML's tracking server."""
    if not uri or uri.startswith("databricks"):
        return False
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive, not a scheme


def flush() -> None:
    """Wait for MLflow's asynchronous logging to write what it has queued (quick: see the buffer above)."""
    try:
        import mlflow

        mlflow.flush_async_logging()
    except Exception as exc:  # tracking must never fail training
        log.warning("could not flush MLflow logging: %s", exc)


def peak_memory_mb() -> tuple[float, str]:
    """CUDA max allocated on this process's GPU, else the process's peak resident set size."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    except ImportError:  # pragma: no cover - torch is always there when training
        pass
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return rss_kb / 1024, "process_peak_rss"


def make_progress_callback(is_main: bool) -> Any:
    """A TrainerCallback that prints AZFT_PROGRESS lines at each logging step (rank 0 only)."""
    from transformers import TrainerCallback

    class ProgressLines(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.last_time = self.start
            self.last_tokens = 0
            self.tokens = 0
            self.run_id: str | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start = self.last_time = time.perf_counter()
            self._grab_mlflow_run()

        def _grab_mlflow_run(self) -> None:
            if self.run_id is None and "mlflow" in sys.modules:
                run = sys.modules["mlflow"].active_run()
                self.run_id = run.info.run_id if run is not None else None

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            self._grab_mlflow_run()
            if not is_main or not logs:
                return
            if "loss" not in logs and "eval_loss" not in logs:
                return  # the end-of-training summary; AZFT_DONE reports it
            now = time.perf_counter()
            tokens = logs.get("num_tokens", logs.get("num_input_tokens_seen"))
            line: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps}
            if "epoch" in logs:
                line["epoch"] = round(float(logs["epoch"]), 4)
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm", "mean_token_accuracy"):
                if key in logs:
                    line[key] = float(logs[key])
            for (
                key
            ) in PREFERENCE_METRICS:  # dpo/orpo: the implicit rewards of the chosen and rejected answers
                for logged in (key, f"eval_{key}"):
                    if logged in logs:
                        line[logged.replace("/", "_")] = float(logs[logged])
            if "loss" in logs and tokens is not None:
                tokens = int(tokens)
                elapsed = now - self.last_time
                line["tokens"] = tokens
                line["tokens_per_second"] = (
                    round((tokens - self.last_tokens) / elapsed, 2) if elapsed > 0 else None
                )
                self.tokens, self.last_tokens, self.last_time = tokens, tokens, now
            line["elapsed_s"] = round(now - self.start, 3)
            emit(PROGRESS_PREFIX, line)

    return ProgressLines()


def loss_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{step, loss, eval_loss?, rewards_margins?, ...}] from the Trainer's log history (eval entries merged into
    their step); dpo/orpo steps carry their reward metrics, "/" written as "_"."""
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        step = int(entry.get("step", 0))
        if "loss" in entry:
            row = by_step.setdefault(step, {"step": step})
            row["loss"] = float(entry["loss"])
            for key in PREFERENCE_METRICS:
                if key in entry:
                    row[key.replace("/", "_")] = float(entry[key])
        if "eval_loss" in entry:
            by_step.setdefault(step, {"step": step})["eval_loss"] = float(entry["eval_loss"])
    return [by_step[step] for step in sorted(by_step)]


def preference_summary(info: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json's dpo/orpo part: the objective's settings and the first and last logged reward metrics."""
    if "objective" not in info:
        return {}
    summary: dict[str, Any] = dict(info)
    rows = [row for row in history if "rewards_margins" in row]
    if rows:
        for key in ("rewards_margins", "rewards_accuracies", "rewards_chosen", "rewards_rejected"):
            if key in rows[-1]:
                summary[f"first_{key}"] = rows[0][key]
                summary[f"final_{key}"] = rows[-1][key]
    return summary


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(finite(metrics), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def log_final_metrics(run_id: str | None, metrics: dict[str, Any]) -> None:
    """Summary numbers (tokens/s, peak memory, final losses) on the same MLflow run the trainer logged to."""
    if run_id is None:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        for key in (
            "train_loss",
            "eval_loss",
            "test_loss",
            "tokens_per_second",
            "peak_memory_mb",
            "train_tokens",
        ):
            value = metrics.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                client.log_metric(run_id, f"final_{key}", float(value))
        for key in ("eval_rewards_margins", "eval_rewards_accuracies"):  # dpo/orpo on validation data
            value = metrics.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                client.log_metric(run_id, f"final_{key}", float(value))
    except Exception as exc:  # tracking must never fail a finished training run
        log.warning("could not log the final metrics to MLflow: %s", exc)
