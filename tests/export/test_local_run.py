"""`azfinetune run SPEC --local` of a spec with export.onnx: trains, exports and checks parity, and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from azfinetune.cli import cli
from azfinetune.cli._app import run_with_boundary


@pytest.mark.training
def test_a_local_run_ends_in_onnx_runtime(
    tmp_path: Path,
    tiny_models: dict[str, dict[str, Path]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_models["phi3"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"""name: onnx-local
task: chat-completion
model: {model["base"]}
data: {{train: {model["data"]}, validation: {model["data"]}}}
method: {{technique: lora, lora: {{r: 4, alpha: 8, dropout: 0.0, target_modules: all-linear}}}}
training: {{max_steps: 2, per_device_batch_size: 4, max_seq_length: 64, precision: fp32,
  gradient_checkpointing: false}}
export: {{onnx: {{precision: fp32, execution_provider: cpu, adapters: merged}}}}
target: {{kind: local}}
""",
        encoding="utf-8",
    )
    code = run_with_boundary(cli, ["run", str(spec), "--local", "--outputs", str(tmp_path / "outputs")])
    output = capsys.readouterr().out
    assert code == 0, output
    run_dir = next((tmp_path / "outputs").glob("*/*"))
    parity = json.loads((run_dir / "onnx" / "parity.json").read_text())
    assert parity["token_agreement"] == 1.0 and parity["adapters"] == "merged"
    assert (run_dir / "onnx" / "genai_config.json").is_file()
    assert (run_dir / "logs" / "export_onnx.log").is_file()
    assert "exporting for ONNX Runtime" in output
    assert (
        f"onnx:      {run_dir / 'onnx'} (fp32, cpu, adapters merged; greedy-token agreement with PyTorch 1.00"
        in output
    )
