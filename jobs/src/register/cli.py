"""`main()`: compare metrics.json with the spec's thresholds, register the MLflow model if they pass, and
write decision.json. Exit 0 when a decision was made (passed or not), 2 on bad input, 1 if registering failed.

Registration goes through MLflow, which an Azure ML job has pointed at its workspace (MLFLOW_TRACKING_URI
azureml://...): the model folder is logged to the step's run and registered from there. Anywhere else (a
local run) the step only writes the decision.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CONDITION = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}


class UsageError(Exception):
    """Bad flags or inputs: exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m register", description=__doc__)
    add = parser.add_argument
    add("--metrics", required=True, type=Path, help="metrics.json, or the folder that holds it")
    add("--model-name", required=True)
    add("--mlflow-model", type=Path, help="the MLflow model folder to register")
    add(
        "--min-eval", default="", help='JSON object of thresholds, e.g. {"eval_loss": "<= 1.2"}; empty = none'
    )
    add("--description", default="")
    add(
        "--mode",
        choices=("auto", "mlflow", "none"),
        default="auto",
        help="auto: mlflow inside Azure ML, else none",
    )
    add("--decision-dir", required=True, type=Path)
    return parser


def parse_thresholds(text: str) -> dict[str, tuple[str, float]]:
    """{"eval_loss": "<= 1.2"} -> {"eval_loss": ("<=", 1.2)}."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--min-eval is not a JSON object: {error.msg}") from error
    if not isinstance(raw, dict):
        raise UsageError('--min-eval must be a JSON object like {"eval_loss": "<= 1.2"}')
    thresholds = {}
    for metric, condition in raw.items():
        match = _CONDITION.match(str(condition))
        if match is None:
            raise UsageError(f"--min-eval {metric}: {condition!r} must look like '<= 1.2' (<=, >=, <, >, ==)")
        thresholds[str(metric)] = (match.group(1), float(match.group(2)))
    return thresholds


def read_metrics(path: Path) -> dict[str, Any]:
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"--metrics {path}: no metrics.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UsageError(f"{file}: not valid JSON ({error.msg})") from error
    if not isinstance(data, dict):
        raise UsageError(f"{file}: expected a JSON object of metrics")
    return data


def decide(
    metrics: dict[str, Any], thresholds: dict[str, tuple[str, float]]
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether every threshold holds; a metric missing from metrics.json fails its check."""
    checks = []
    for metric, (op, bound) in sorted(thresholds.items()):
        value = metrics.get(metric)
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        passed = number is not None and _OPERATORS[op](number, bound)
        checks.append({"metric": metric, "condition": f"{op} {bound:g}", "value": number, "passed": passed})
    return all(check["passed"] for check in checks), checks


def _in_azure_ml() -> bool:
    return os.environ.get("MLFLOW_TRACKING_URI", "").startswith("azureml:")


def register_with_mlflow(model_dir: Path, name: str, description: str, tags: dict[str, str]) -> str:
    """Log the folder to this step's run and register it; returns the new model version."""
    import mlflow

    if not (model_dir / "MLmodel").is_file():
        raise UsageError(f"--mlflow-model {model_dir}: no MLmodel file (not an MLflow model folder)")
    with mlflow.start_run() as run:  # inside an Azure ML job: the step's own run
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        uri = f"runs:/{run.info.run_id}/model"
    version = mlflow.register_model(uri, name, tags=tags)
    if description:
        mlflow.MlflowClient().update_model_version(name, version.version, description=description)
    return str(version.version)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    decision: dict[str, Any] = {"model_name": args.model_name, "registered": False, "model_version": None}
    try:
        thresholds = parse_thresholds(args.min_eval)
        metrics = read_metrics(args.metrics)
        passed, checks = decide(metrics, thresholds)
        mode = args.mode if args.mode != "auto" else ("mlflow" if _in_azure_ml() else "none")
        decision.update(passed=passed, checks=checks, mode=mode)
        if not passed:
            failed = ", ".join(
                f"{c['metric']} {c['condition']} (got {c['value']})" for c in checks if not c["passed"]
            )
            decision["reason"] = f"evaluation did not pass: {failed}"
        elif mode == "none":
            decision["reason"] = "passed; not registered: no Azure ML workspace here (decision only)"
        else:
            if args.mlflow_model is None:
                raise UsageError("--mlflow-model is required to register")
            tags = {"azfinetune.eval." + c["metric"]: str(c["value"]) for c in checks}
            decision["model_version"] = register_with_mlflow(
                args.mlflow_model, args.model_name, args.description, tags
            )
            decision["registered"] = True
            decision["reason"] = "passed; registered"
    except UsageError as error:
        print(f"register: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        traceback.print_exc()
        print(
            f"register: error: registering {args.model_name} failed: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 1
    finally:
        if "passed" in decision:
            args.decision_dir.mkdir(parents=True, exist_ok=True)
            (args.decision_dir / "decision.json").write_text(
                json.dumps(decision, indent=2) + "\n", encoding="utf-8"
            )
    print(f"register: {decision['reason']}", file=sys.stderr)
    return 0
