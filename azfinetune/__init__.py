"""azfinetune: one spec, one command — fine-tune language models on Azure Machine Learning or locally.

Importing azfinetune imports only its own light modules (and pydantic): azure.ai.ml, torch and transformers are
imported inside the functions that need them. The HTTP-level fakes for tests are in `azfinetune.testing`.
"""

from __future__ import annotations

from azfinetune._version import __version__
from azfinetune.client import FineTuneClient, JobInfo, SubmittedJob
from azfinetune.data import DataReport, validate_data
from azfinetune.errors import AzFineTuneError, Issue, SpecError
from azfinetune.local import run_local
from azfinetune.planner import Plan, plan
from azfinetune.spec import FineTuneSpec, load_spec
from azfinetune.targets import CheckReport, build_job, check_spec

__all__ = [
    "AzFineTuneError",
    "CheckReport",
    "DataReport",
    "FineTuneClient",
    "FineTuneSpec",
    "Issue",
    "JobInfo",
    "Plan",
    "SpecError",
    "SubmittedJob",
    "__version__",
    "build_job",
    "check_spec",
    "load_spec",
    "plan",
    "run_local",
    "validate_data",
]
