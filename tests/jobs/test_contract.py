"""azft_contract itself, and that each side uses it: the flag table is the entry point's parser and the
README's table, progress lines round-trip, column items parse one way, detection is cheap and
idempotent, the package needs only the standard library, and the job steps refuse what the validator
refuses, with the same lines."""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import azft_contract
import pytest
from azft_contract import (
    COLUMN_KEYS,
    COLUMNS,
    DATA_KINDS,
    DONE_PREFIX,
    ENTRY_POINT_FLAGS,
    ENTRY_POINT_TASKS,
    ERROR_PREFIX,
    FLAGS,
    PROGRESS_PREFIX,
    REGISTRY_ONLY_TASKS,
    TASKS,
    ContractError,
    check_file,
    column_args,
    command_args,
    detect_columns,
    format_progress_line,
    parse_columns,
    parse_progress_line,
)

from azfinetune.data import validate_data
from tests.data._corpus import CASES, Case, clean_files
from tests.jobs.helpers import JOBS_SRC

CONTRACT = JOBS_SRC / "azft_contract"


def test_every_public_name_resolves() -> None:
    assert len(set(azft_contract.__all__)) == len(azft_contract.__all__)  # ruff keeps the order
    for name in azft_contract.__all__:
        assert getattr(azft_contract, name) is not None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def test_the_contract_needs_only_the_standard_library() -> None:
    imported = set().union(*(_imports(p) for p in CONTRACT.glob("*.py")))
    outside = imported - set(sys.stdlib_module_names) - {"azft_contract", "__future__"}
    assert outside == {"pyarrow"}  # imported inside the Parquet reader only
    tables = (CONTRACT / "tables.py").read_text(encoding="utf-8")
    assert "\nimport pyarrow" not in tables and "\nfrom pyarrow" not in tables


def test_nothing_in_jobs_src_imports_azfinetune() -> None:
    offenders = [str(p) for p in JOBS_SRC.rglob("*.py") if "azfinetune" in _imports(p)]
    assert offenders == []


def test_the_host_installs_the_same_files() -> None:
    assert Path(azft_contract.__file__).resolve().parent == CONTRACT.resolve()


# -- tasks and columns -----------------------------------------------------------------------------------
def test_tasks_and_columns() -> None:
    assert set(ENTRY_POINT_TASKS) | set(REGISTRY_ONLY_TASKS) == set(TASKS)
    assert set(DATA_KINDS) == set(COLUMNS)
    assert tuple(sorted({k for columns in COLUMNS.values() for k in columns})) == COLUMN_KEYS
    assert azft_contract.default_columns("text-classification") == {
        "text": "text",
        "text_pair": "text_pair",
        "label": "label",
    }
    assert azft_contract.normalize_task("TextClassification") == "text-classification"
    with pytest.raises(ContractError, match="unknown task"):
        azft_contract.normalize_task("image-classification")


# -- flags -----------------------------------------------------------------------------------------------
def _parser_actions() -> dict[str, argparse.Action]:
    from finetune.args import build_parser

    return {a.option_strings[0]: a for a in build_parser()._actions if a.option_strings and a.dest != "help"}


def test_the_entry_points_parser_is_the_flag_table() -> None:
    actions = _parser_actions()
    assert list(actions) == [flag.name for flag in ENTRY_POINT_FLAGS]
    for flag in ENTRY_POINT_FLAGS:
        action = actions[flag.name]
        assert action.dest == flag.dest
        assert action.required == flag.required
        assert action.default == ([] if flag.repeatable else flag.default), flag.name
        assert tuple(action.choices or ()) == flag.choices, flag.name


def test_the_readme_documents_every_flag() -> None:
    readme = (JOBS_SRC / "README.md").read_text(encoding="utf-8")
    documented = re.findall(r"^\| `(--[a-z-]+)", readme, flags=re.MULTILINE)
    assert documented == [flag.name for flag in ENTRY_POINT_FLAGS]


def test_command_args_write_what_the_parser_reads(tmp_path: Path) -> None:
    from finetune.args import parse_args

    train = tmp_path / "train.jsonl"
    train.write_text("{}\n")
    values: dict[str, Any] = {
        "task": "text-classification",
        "model": "hf:org/model",
        "train_file": train,
        "output_dir": tmp_path / "out",
        "lora_dropout": 0.1,
        "epochs": 2.0,
        "learning_rate": 1e-4,
        "gradient_checkpointing": True,
        "column": {"text": "review, long", "label": "stars"},
    }
    argv = command_args(values)
    assert argv[:4] == ["--task", "text-classification", "--model", "hf:org/model"]
    assert "--epochs" in argv and argv[argv.index("--epochs") + 1] == "2"
    assert argv[argv.index("--gradient-checkpointing") + 1] == "true"
    args = parse_args(argv)
    assert (args.lora_dropout, args.epochs, args.learning_rate, args.gradient_checkpointing) == (
        0.1,
        2.0,
        1e-4,
        True,
    )
    assert args.columns == {"text": "review, long", "label": "stars"}
    assert column_args({"text": "a"}) == ["--column", "text=a"]
    for bad, match in (
        ({**values, "lora_r": 0}, "positive"),
        ({**values, "technique": "lorax"}, "not one of"),
        ({**values, "packing": "yes"}, "boolean"),
        ({**values, "no_such_flag": 1}, "not flags"),
        ({k: v for k, v in values.items() if k != "train_file"}, "--train-file is required"),
    ):
        with pytest.raises(ValueError, match=match):
            command_args(bad)
    assert {
        FLAGS[name].input for name in ("model", "train_file", "validation_file", "test_file", "deepspeed")
    } == {
        "model",
        "train",
        "validation",
        "test",
        "deepspeed",
    }


def test_column_items_parse_one_way() -> None:
    assert parse_columns(["text=review,label=stars", "text_pair = b"]) == {
        "text": "review",
        "label": "stars",
        "text_pair": "b",
    }
    # A comma starts a new item only before a known KEY=, so a name may hold commas.
    assert parse_columns(["text=last, first,label=y"]) == {"text": "last, first", "label": "y"}
    with pytest.raises(ContractError, match="KEY one of messages for chat-completion"):
        parse_columns(["text=x"], "chat-completion")
    with pytest.raises(ContractError, match="expected KEY=NAME"):
        parse_columns(["review"])


# -- progress lines --------------------------------------------------------------------------------------
def test_progress_lines_round_trip() -> None:
    line = format_progress_line(PROGRESS_PREFIX, {"step": 2, "loss": math.nan, "history": [math.inf, 1.5]})
    assert line == 'AZFT_PROGRESS {"history": [null, 1.5], "loss": null, "step": 2}'
    assert parse_progress_line(line) == ("progress", {"history": [None, 1.5], "loss": None, "step": 2})
    assert parse_progress_line(format_progress_line(DONE_PREFIX, {"a": 1})) == ("done", {"a": 1})
    assert parse_progress_line(format_progress_line(ERROR_PREFIX, {"exit_code": 2})) == (
        "error",
        {"exit_code": 2},
    )
    for other in ("AZFT_PROGRESS not json", "AZFT_DONE [1]", "step 2 loss 1.0", ""):
        assert parse_progress_line(other) is None
    with pytest.raises(ValueError, match="prefix"):
        format_progress_line("AZFT_OTHER ", {})


# -- reading -----------------------------------------------------------------------------------------------
def test_detect_columns_reads_only_up_to_the_first_object(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    head = b'\n  \n[1]\n{"sentence1": "a", "sentence2": "b", "labels": 1}\n'
    path.write_bytes(head + b"\xff\xfe garbage that check_file would report\n" * 100_000)
    assert detect_columns(path, "text-classification") == {
        "text": "sentence1",
        "text_pair": "sentence2",
        "label": "labels",
    }
    assert detect_columns(path, "text-classification", {"label": "sentence2"})["label"] == "sentence2"
    table = tmp_path / "train.csv"
    table.write_text("document,highlights\n" + "x\n" * 10)
    assert detect_columns(table, "summarization") == {"source": "document", "target": "highlights"}
    with pytest.raises(ContractError, match="must be JSON Lines"):
        detect_columns(table, "chat-completion")


def test_a_folder_input_is_its_one_data_file(tmp_path: Path) -> None:
    folder = tmp_path / "uri_folder"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "train.tab").write_text(
        "text\tlabel\n" + "".join(f"t{i}\t{i % 2}\n" for i in range(12))
    )
    (folder / "README").write_text("not data")
    result = check_file(folder, "text-classification")
    assert result.ok and result.file_format == "tsv" and result.examples == 12
    (folder / "other.csv").write_text("text,label\n")
    with pytest.raises(ContractError, match="exactly one"):
        check_file(folder, "text-classification")


def test_the_trainer_receives_logical_keys_and_decoded_cells(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbfwords,ner_tags\r\n" + b'"[""EU"", ""x""]","[""B-ORG"", 0]"\r\n' * 2)
    result = check_file(path, "token-classification", {"tokens": "words"}, keep_examples=True)
    assert result.ok and result.records == [{"tokens": ["EU", "x"], "tags": ["B-ORG", "0"]}] * 2
    assert result.lines == [2, 3] and result.columns == {"tokens": "words", "tags": "ner_tags"}


# -- the job steps refuse what the validator refuses --------------------------------------------------------
REFUSED = [c for c in CASES if c.task in ENTRY_POINT_TASKS and c.severity == "error" and not c.options]


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_finetune_exits_2_on_the_lines_the_validator_reports(case: Case, tmp_path: Path) -> None:
    path = tmp_path / case.name
    path.write_bytes(case.content)
    report = validate_data(path, task=case.task)
    assert not report.ok
    argv = [
        "--task",
        case.task,
        "--model",
        str(tmp_path),
        "--train-file",
        str(path),
        "--output-dir",
        str(tmp_path / "o"),
    ]
    run = subprocess.run(
        [sys.executable, "-m", "finetune", *argv],
        cwd=JOBS_SRC,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    kinds = ", ".join(f"{code} ×{n}" for code, n in sorted(report.error_counts.items()))
    assert f"{sum(report.error_counts.values())} error" in run.stderr and f"({kinds})" in run.stderr
    for issue in report.errors[:10]:
        assert str(issue) in run.stderr  # file:line: path: message [code] (hint), as data validate prints it
    error = json.loads(run.stdout.split("AZFT_ERROR ", 1)[1])
    assert error["exit_code"] == 2


@pytest.mark.parametrize(
    "clean", [c for c in clean_files() if c.task in ENTRY_POINT_TASKS], ids=lambda c: c.id
)
def test_finetune_loads_what_the_validator_passes(clean: Any, tmp_path: Path) -> None:
    from finetune.args import parse_args
    from finetune.data import load_splits

    path = tmp_path / clean.name
    path.write_bytes(clean.content)
    columns = [f"{k}={v}" for k, v in (clean.columns or {}).items()]
    argv = [
        "--task",
        clean.task,
        "--model",
        "m",
        "--train-file",
        str(path),
        "--output-dir",
        str(tmp_path / "o"),
    ]
    splits = load_splits(parse_args(argv + [x for c in columns for x in ("--column", c)]))
    assert (
        len(splits.train) == validate_data(path, task=clean.task, columns=clean.columns).stats.valid_examples
    )


def test_evaluate_model_reads_through_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    from evaluate_model.cli import main

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "valid.jsonl"
    data.write_text('{"prompt": "Q", "completion": "A"}\n{"text": "plain"}\n')
    argv = [
        "--task",
        "text-completion",
        "--model",
        str(model),
        "--data-file",
        str(data),
        "--metrics-dir",
        str(tmp_path / "m"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{data}:2: text: this example has 'text'" in err and "[mixed_shapes]" in err
