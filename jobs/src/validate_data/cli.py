"""`main()`: check each data file, write report.json to --report-dir; exit 0 ok, 2 when any file has errors."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from validate_data.checks import check_file, data_file

TASKS = (
    "chat-completion",
    "text-completion",
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
)


def parse_columns(items: list[str]) -> dict[str, str]:
    """`KEY=NAME` items, each possibly comma-separated (`text=review,label=stars`), as a mapping."""
    columns: dict[str, str] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, name = part.partition("=")
            if not sep or not key or not name:
                raise SystemExit(f"validate_data: error: --column {part!r}: expected KEY=NAME")
            columns[key] = name
    return columns


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m validate_data", description=__doc__)
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add("--train-file", required=True, type=Path)
    add("--validation-file", type=Path)
    add("--test-file", type=Path)
    add("--column", action="append", default=[], metavar="KEY=NAME[,KEY=NAME]")
    add("--max-seq-length", type=int)
    add(
        "--engine",
        choices=("auto", "azfinetune", "builtin"),
        default=os.environ.get("AZFT_VALIDATE_ENGINE", "auto"),
        help="auto: azfinetune's validator when it is importable, else the built-in checks",
    )
    add("--report-dir", required=True, type=Path)
    add(
        "--train-output-dir",
        type=Path,
        help="copy the training file here when every file passes: a fine-tune step that reads it cannot start on "
        "data that failed",
    )
    return parser


def _with_azfinetune(
    files: dict[str, Path], task: str, columns: dict[str, str], max_seq_length: int | None
) -> dict[str, Any] | None:
    try:
        from azfinetune.data import validate_data
    except ImportError:
        return None
    out: dict[str, Any] = {}
    for role, path in files.items():
        report = validate_data(path, task=task, columns=columns or None, max_seq_length=max_seq_length)
        document = report.to_dict()
        document["ok"] = report.ok
        out[role] = document
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    columns = parse_columns(args.column)
    files = {
        role: path
        for role, path in (
            ("train", args.train_file),
            ("validation", args.validation_file),
            ("test", args.test_file),
        )
        if path is not None
    }
    engine = "builtin"
    results: dict[str, Any] | None = None
    if args.engine in ("auto", "azfinetune"):
        results = _with_azfinetune(files, args.task, columns, args.max_seq_length)
        if results is None and args.engine == "azfinetune":
            print("validate_data: error: azfinetune is not importable here", file=sys.stderr)
            return 2
        engine = "azfinetune" if results is not None else "builtin"
    if results is None:
        results = {role: check_file(path, args.task, columns).to_dict() for role, path in files.items()}
    ok = all(result["ok"] for result in results.values())
    args.report_dir.mkdir(parents=True, exist_ok=True)
    report = {"ok": ok, "engine": engine, "task": args.task, "columns": columns, "files": results}
    (args.report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for role, result in results.items():
        state = "ok" if result["ok"] else "FAILED"
        print(f"validate_data: {role} ({result['path']}): {state} [{engine}]", file=sys.stderr)
        for issue in result.get("errors", []):
            where = f"line {issue['line']}: " if issue.get("line") is not None else ""
            key = f"{issue['field']}: " if issue.get("field") else ""
            print(f"  error: {where}{key}{issue['message']} [{issue['kind']}]", file=sys.stderr)
    if not ok:
        return 2
    if args.train_output_dir is not None:
        source = data_file(args.train_file)
        args.train_output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, args.train_output_dir / source.name)
    return 0
