"""The export_onnx component: loads with azure-ai-ml, and its command line is one the step's parser takes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "jobs" / "components" / "export_onnx.yaml"


def test_the_component_loads_and_its_command_parses() -> None:
    from azure.ai.ml import load_component

    component = load_component(source=str(COMPONENT))
    assert component._validate().passed
    raw = yaml.safe_load(COMPONENT.read_text())
    assert (
        COMPONENT.parent / raw["environment"]["build"]["path"]
    ).resolve() == ROOT / "environments" / "onnx-export"
    command = " ".join(raw["command"].split())
    for name, declared in raw["inputs"].items():
        command = command.replace("${{inputs." + name + "}}", str(declared.get("default", "x")))
    command = command.replace("${{outputs.onnx_model}}", "out").replace("$[[", "").replace("]]", "")
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "export_onnx"]
    sys.path.insert(0, str(ROOT / "jobs" / "src"))
    try:
        from export_onnx.cli import build_parser

        args = build_parser().parse_args(words[3:])
    finally:
        sys.path.remove(str(ROOT / "jobs" / "src"))
    assert (args.precision, args.execution_provider, args.adapters) == ("int4", "cpu", "merged")
