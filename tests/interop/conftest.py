"""Olive's own checks of a workflow (olive-ai's RunConfig, each pass's config class, the data pre-processing
parameters, transformers' TrainingArguments), and the CLI run in-process."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _olive_telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from azfinetune.interop import OLIVE_TELEMETRY_ENV

    for key, value in OLIVE_TELEMETRY_ENV.items():
        monkeypatch.setenv(key, value)


def olive_check(config: dict[str, Any]) -> Any:
    """Validate a workflow the way `olive run` does before it trains: RunConfig, then every pass's config on
    the target's accelerator (ModelBuilder's own validate_config too), the text-generation pre-processing
    parameters, and the training arguments as transformers.TrainingArguments. Returns the RunConfig."""
    import transformers
    from olive.data.component.text_generation import TextGenParams
    from olive.hardware.accelerator import AcceleratorSpec
    from olive.package_config import OlivePackageConfig
    from olive.passes.pytorch.lora import HFTrainingArguments, QLoRATrainingArguments
    from olive.workflows.run.config import RunConfig

    run_config = RunConfig.model_validate(copy.deepcopy(config))
    package = OlivePackageConfig.parse_file_or_obj(OlivePackageConfig.get_default_config_path())
    target = run_config.engine.target
    if target is not None and target.config.accelerators:
        accelerator = target.config.accelerators[0]
        spec = AcceleratorSpec(
            accelerator_type=accelerator.device, execution_provider=accelerator.execution_providers[0]
        )
    else:
        spec = AcceleratorSpec(accelerator_type="cpu", execution_provider="CPUExecutionProvider")
    for name, pass_configs in run_config.passes.items():
        for pass_config in pass_configs:
            cls = package.import_pass_module(pass_config.type)
            checked = cls.generate_config(spec, pass_config.config, disable_search=True)
            assert cls.validate_config(checked, spec), f"{name}: {cls.__name__} refuses {checked}"
            raw = config["passes"][name].get("training_args")
            if raw is not None:
                fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
                unknown = set(raw) - fields
                assert not unknown, f"{name}.training_args: not TrainingArguments fields: {unknown}"
                args_class = QLoRATrainingArguments if cls.__name__ == "QLoRA" else HFTrainingArguments
                args_class.model_validate(copy.deepcopy(raw)).create_training_args()
    for data_config in run_config.data_configs:
        params = dict(data_config.pre_process_data_config.params)
        for key in ("model_name", "task", "trust_remote_code"):
            params.pop(key, None)
        TextGenParams.model_validate(params)
    return run_config


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """cli("export", "spec.yaml", ...) -> CliResult: the real CLI in this process."""
    import azfinetune.cli as cli_package
    from azfinetune.cli._app import run_with_boundary

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("AZFINETUNE_DEBUG", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = run_with_boundary(cli_package.cli, list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
