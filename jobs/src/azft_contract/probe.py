"""`python -m azft_contract.probe`: read data files the way the job steps do, many per process, for tests.

Run with cwd = jobs/src. Each stdin line is a JSON request {"id", "path", "task", "columns"?, "serverless"?};
each answer is one stdout line {"id", "ok", "examples", "valid_examples", "errors": [[code, line], ...],
"error_counts", "columns", "detected"} or {"id", "refused": message} when the file cannot be read at all.
At the end of input it answers {"modules": [...]}: the top-level modules the process imported, so a test
can see that no azfinetune (nor orjson or msgspec) took part.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from azft_contract.errors import ContractError
from azft_contract.reader import check_file, detect_columns

_ALL = 1 << 30  # keep every finding: the answer lists every error line


def _order(error: list[Any]) -> tuple[str, int]:
    return (error[0], -1 if error[1] is None else error[1])


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The verdict, error lines and counts of one file, as check_file (every job step's reader) finds them."""
    out: dict[str, Any] = {"id": request.get("id")}
    columns = request.get("columns") or None
    try:
        result = check_file(
            request["path"],
            request["task"],
            columns,
            serverless=bool(request.get("serverless")),
            max_per_code=_ALL,
        )
        detected = detect_columns(request["path"], request["task"], columns)
    except ContractError as error:
        out["refused"] = str(error)
        return out
    out.update(
        ok=result.ok,
        examples=result.examples,
        valid_examples=result.valid_examples,
        errors=sorted(([f.code, f.line] for f in result.findings.errors), key=_order),
        error_counts=result.findings.error_counts,
        columns=result.columns,
        detected=detected,
    )
    return out


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        sys.stdout.write(json.dumps(answer(json.loads(line)), sort_keys=True) + "\n")
        sys.stdout.flush()
    modules = sorted({name.partition(".")[0] for name in sys.modules})
    sys.stdout.write(json.dumps({"modules": modules}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
