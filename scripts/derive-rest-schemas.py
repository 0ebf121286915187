#!/usr/bin/env python
"""Derive (or --check) azfinetune/testing/rest_schemas/: the Azure ML Jobs REST schema per api-version.

    .venv/bin/python scripts/derive-rest-schemas.py            # regenerate every schema and SOURCES.json
    .venv/bin/python scripts/derive-rest-schemas.py --check    # exit 1 if a shipped schema differs

The preview api-versions come from the azure-ai-ml 1.27.1 wheel (downloaded with `pip download`, or --wheel PATH),
checked against its sha256; the stable 2025-12-01 from the installed azure-ai-ml 1.35.2. See
azfinetune/testing/_rest_schema.py for the rules of the derivation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azfinetune.testing._rest_schema import (  # noqa: E402
    JOB_API_VERSIONS,
    SCHEMA_DIR,
    derive_msrest_schema,
    derive_typespec_schema,
    schema_text,
)

WHEEL = "azure-ai-ml==1.27.1"
WHEEL_SHA256 = "7e01bdbfe361757bc7f91dedd0192894bfe4197d5156e4b49b5a594ba88e3b92"
STABLE_SDK = "1.35.2"
STABLE = "2025-12-01"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preview_wheel(given: Path | None, workdir: Path) -> Path:
    if given is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(workdir)],
            check=True,
        )
        given = next(workdir.glob("azure_ai_ml-1.27.1-*.whl"))
    if sha256(given) != WHEEL_SHA256:
        raise SystemExit(f"{given}: sha256 is not {WHEEL_SHA256} ({WHEEL})")
    return given


def derive_all(wheel: Path, workdir: Path) -> tuple[dict[str, str], dict[str, object]]:
    texts: dict[str, str] = {}
    sources: dict[str, object] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("azure/ai/ml/_restclient/v") and "/models/" in name:
                archive.extract(name, workdir)
    for version in JOB_API_VERSIONS:
        if version == STABLE:
            continue
        folder = f"_restclient/v{version.replace('-', '_')}/models"
        models = workdir / "azure" / "ai" / "ml" / folder
        texts[version] = schema_text(derive_msrest_schema(models, version, label=folder))
        sources[version] = {
            "deriver": "derive_msrest_schema",
            "from": f"{WHEEL} wheel (sha256 {WHEEL_SHA256}), azure/ai/ml/{folder}",
            "inputs_sha256": {
                name: sha256(models / name)
                for name in ("_models_py3.py", "_azure_machine_learning_workspaces_enums.py")
            },
        }
    import azure.ai.ml

    installed = getattr(azure.ai.ml, "__version__", "?")
    if installed != STABLE_SDK:
        raise SystemExit(
            f"the stable schema is derived from azure-ai-ml {STABLE_SDK}; {installed} is installed"
        )
    models = Path(azure.ai.ml.__file__).parent / "_restclient" / "arm_ml_service" / "models"
    texts[STABLE] = schema_text(derive_typespec_schema(models, STABLE))
    sources[STABLE] = {
        "deriver": "derive_typespec_schema",
        "from": f"azure-ai-ml=={STABLE_SDK}, azure/ai/ml/_restclient/arm_ml_service/models",
        "inputs_sha256": {name: sha256(models / name) for name in ("_models.py", "_enums.py")},
    }
    for version, text in texts.items():
        sources[version]["schema_sha256"] = hashlib.sha256(text.encode()).hexdigest()  # type: ignore[index]
    return texts, sources


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare with the shipped files, write nothing")
    parser.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} wheel (else pip downloads it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        texts, sources = derive_all(preview_wheel(args.wheel, workdir), workdir)
    manifest = json.dumps(sources, indent=2, sort_keys=True) + "\n"
    files = {f"jobs-{version}.schema.json": text for version, text in texts.items()}
    files["SOURCES.json"] = manifest
    if args.check:
        stale = [
            name for name, text in files.items() if (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"differs: {SCHEMA_DIR / name}")
        return 1 if stale else 0
    for name, text in files.items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
