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

    # The same finished run, exported again by `azfinetune export RUN --onnx`: base graph + separate adapter.
    separate = tmp_path / "separate"
    args = ["export", str(run_dir.parent), "--onnx", "--adapters", "separate", "--precision", "fp32"]
    code = run_with_boundary(cli, [*args, "-o", str(separate), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)["parity"]
    assert report["adapters"] == "separate" and report["adapter_file"] == "adapter.onnx_adapter"
    # No adapter = the base model, the adapter = the merged model, token for token.
    assert report["checks"]["base"]["token_agreement"] == 1.0
    assert report["checks"]["merged"]["token_agreement"] == 1.0
    assert (separate / "adapter.onnx_adapter").is_file()

    # A bare adapter folder (as an Azure ML job's downloaded `adapter` output) needs its base model.
    adapter = run_dir / "adapter"
    code = run_with_boundary(cli, ["export", str(adapter), "--onnx"])
    captured = capsys.readouterr()
    assert code == 2 and "--base-model" in captured.err and "Traceback" not in captured.err
    bare = tmp_path / "bare"
    argv = ["export", str(adapter), "--onnx", "--precision", "fp32", "--base-model", str(model["base"])]
    code = run_with_boundary(cli, [*argv, "-o", str(bare)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads((bare / "parity.json").read_text())["token_agreement"] == 1.0
    assert "greedy tokens agree with PyTorch's merged model: 100.0%" in captured.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "outputs/nope", "--onnx"], "no local run or model folder at outputs/nope"),
        (["export", ".", "--onnx", "--precision", "int8", "--execution-provider", "cuda"], "--precision"),
        (["export", "spec.yaml"], "--to olive (a spec) or --onnx"),
        (["export", "spec.yaml", "--to", "olive", "--onnx"], "--to olive (a spec) or --onnx"),
        (["export", "spec.yaml", "--to", "olive", "--precision", "fp32"], "--precision applies to --onnx"),
    ],
)
def test_export_onnx_refuses_bad_input_with_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code = run_with_boundary(cli, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in " ".join(err.split()) and "Traceback" not in err
