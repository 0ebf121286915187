"""`main()`: check each data file, write report.json to --report-dir; exit 0 ok, 2 when any file has errors.

The files are read by azft_contract, as the fine-tune step and `azfinetune data validate` read them, so
this step passes exactly the files the trainer accepts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from azft_contract import (
    OBJECTIVES,
    TASKS,
    ContractError,
    check_file,
    data_kind,
    parse_columns,
    resolve_data_file,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m validate_data", description=__doc__)
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add("--objective", default="sft", choices=OBJECTIVES, help="dpo/orpo: the files hold preference pairs")
    add("--train-file", required=True, type=Path)
    add("--validation-file", type=Path)
    add("--test-file", type=Path)
    add(
        "--column",
        action="append",
        default=[],
        metavar="KEY=NAME[,KEY=NAME]",
        help="column names, as the fine-tune step takes them; the others are detected in each file",
    )
    add(
        "--max-seq-length",
        type=int,
        help="accepted for the component's signature; tokens are not counted here",
    )
    add("--report-dir", required=True, type=Path)
    add(
        "--train-output-dir",
        type=Path,
        help="copy the training file here when every file passes: a fine-tune step that reads it cannot start on "
        "data that failed",
    )
    return parser


def check_one(path: Path, task: str, columns: dict[str, str]) -> dict[str, Any]:
    """report.json's entry for one file: azft_contract's FileResult.to_dict(), or why it cannot be read."""
    try:
        return check_file(path, task, columns or None).to_dict()
    except ContractError as error:
        finding = {"severity": "error", "path": "", "message": str(error), "code": "unreadable_file"}
        return {
            "path": str(path),
            "task": task,
            "ok": False,
            "error_counts": {"unreadable_file": 1},
            "errors": [finding],
        }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kind = data_kind(args.task, args.objective)  # the task's examples, or preference pairs (dpo, orpo)
    try:
        columns = parse_columns(args.column, kind)
    except ContractError as error:
        print(f"validate_data: error: {error}", file=sys.stderr)
        return 2
    files = {
        role: path
        for role, path in (
            ("train", args.train_file),
            ("validation", args.validation_file),
            ("test", args.test_file),
        )
        if path is not None
    }
    results = {role: check_one(path, kind, columns) for role, path in files.items()}
    ok = all(result["ok"] for result in results.values())
    args.report_dir.mkdir(parents=True, exist_ok=True)
    report = {"ok": ok, "task": args.task, "columns": columns, "files": results}
    (args.report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for role, result in results.items():
        state = "ok" if result["ok"] else "FAILED"
        print(f"validate_data: {role} ({result['path']}): {state}", file=sys.stderr)
        for issue in result.get("errors", []):
            where = f"line {issue['line']}: " if issue.get("line") is not None else ""
            key = f"{issue['path']}: " if issue.get("path") else ""
            print(f"  error: {where}{key}{issue['message']} [{issue['code']}]", file=sys.stderr)
    if not ok:
        return 2
    if args.train_output_dir is not None:
        source = resolve_data_file(args.train_file)
        args.train_output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, args.train_output_dir / source.name)
    return 0
