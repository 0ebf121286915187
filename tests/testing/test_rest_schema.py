"""The shipped REST schemas are derived, not written: re-deriving them from azure-ai-ml's models gives the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from azfinetune.testing._rest_schema import (
    JOB_API_VERSIONS,
    SCHEMA_DIR,
    derive_msrest_schema,
    derive_typespec_schema,
    job_schema,
    schema_text,
)

SOURCES = json.loads((SCHEMA_DIR / "SOURCES.json").read_text(encoding="utf-8"))
#: A downloaded azure-ai-ml 1.27.1 wheel (`pip download --no-deps azure-ai-ml==1.27.1`) for the preview schemas.
WHEEL_ENV = "AZFT_AZURE_AI_ML_127_WHEEL"
# scripts/setup-venv.sh (the dev extra) fetches the wheel into this cache, outside the clone.
WHEEL_CACHE = Path(
    os.environ.get("AZFT_WHEEL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "azfinetune" / "wheels"
)


def _wheel() -> Path | None:
    if WHEEL_ENV in os.environ:
        return Path(os.environ[WHEEL_ENV])
    return next(iter(sorted(WHEEL_CACHE.glob("azure_ai_ml-1.27.1-*.whl"))), None)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_shipped_schema_is_the_one_its_sources_name() -> None:
    assert sorted(SOURCES) == sorted(JOB_API_VERSIONS)
    for version in JOB_API_VERSIONS:
        text = (SCHEMA_DIR / f"jobs-{version}.schema.json").read_bytes()
        assert sha256(text) == SOURCES[version]["schema_sha256"], f"{version}: edited by hand?"
        assert job_schema(version)["title"].endswith(version)


def test_the_stable_schema_rederives_from_the_installed_azure_ai_ml() -> None:
    import azure.ai.ml

    models = Path(azure.ai.ml.__file__).parent / "_restclient" / "arm_ml_service" / "models"
    recorded = SOURCES["2025-12-01"]["inputs_sha256"]
    installed = {name: sha256((models / name).read_bytes()) for name in recorded}
    if installed != recorded:
        pytest.skip(
            f"azure-ai-ml {azure.ai.ml.__version__}'s REST models differ from those the schema was derived from: "
            "run scripts/derive-rest-schemas.py and review the difference"
        )
    derived = schema_text(derive_typespec_schema(models, "2025-12-01"))
    assert derived == (SCHEMA_DIR / "jobs-2025-12-01.schema.json").read_text(encoding="utf-8")


@pytest.mark.skipif(
    _wheel() is None,
    reason=f"no azure-ai-ml 1.27.1 wheel in {WHEEL_CACHE} (scripts/setup-venv.sh dev fetches it) or {WHEEL_ENV}",
)
def test_the_preview_schemas_rederive_from_the_azure_ai_ml_1_27_wheel(tmp_path: Path) -> None:
    wheel = _wheel()
    assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("azure/ai/ml/_restclient/v") and "/models/" in name:
                archive.extract(name, tmp_path)
    for version in JOB_API_VERSIONS:
        if version == "2025-12-01":
            continue
        folder = f"_restclient/v{version.replace('-', '_')}/models"
        models = tmp_path / "azure" / "ai" / "ml" / folder
        for name, digest in SOURCES[version]["inputs_sha256"].items():
            assert sha256((models / name).read_bytes()) == digest, (version, name)
        derived = schema_text(derive_msrest_schema(models, version, label=folder))
        assert derived == (SCHEMA_DIR / f"jobs-{version}.schema.json").read_text(encoding="utf-8"), version


def test_the_schemas_know_the_job_types_and_statuses() -> None:
    stable = job_schema("2025-12-01")
    removed = stable["$defs"]["JobBaseProperties"]["discriminator"]["x-removed-at-this-api-version"]
    assert "FineTuning" in removed  # @removed at 2025-12-01 in the TypeSpec
    statuses = job_schema("2024-10-01-preview")["$defs"]["JobBaseProperties"]["properties"]["status"]["enum"]
    assert "Paused" in statuses
