"""The fine-tuning spec as strict pydantic models: the user-facing contract of DESIGN.md."""

from __future__ import annotations

import enum
import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from azft_contract import DPO_LOSS_TYPES, data_kind
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from azfinetune.errors import SpecError
from azfinetune.spec._errors import spec_error_from_validation, split_path
from azfinetune.spec._rules import cross_field_issues
from azfinetune.spec._targets import LocalTarget, Priority, TargetKind, TargetSpec

__all__ = [
    "DataColumns",
    "DataSpec",
    "DeepSpeedSpec",
    "ExportSpec",
    "FineTuneSpec",
    "LoraSpec",
    "LrScheduler",
    "MethodSpec",
    "Objective",
    "OnnxExportSpec",
    "Optimizer",
    "Precision",
    "PreferenceSpec",
    "Priority",
    "QuantizationSpec",
    "RegisterSpec",
    "TargetKind",
    "TargetSpec",
    "Task",
    "Technique",
    "TrainingSpec",
    "WorkspaceSpec",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ASSET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
ENV_VAR_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: An Azure ML job name (training.resume_from): letters, digits, '-' and '_', starting with a letter or digit.
JOB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
KEYVAULT_REF_PATTERN = re.compile(r"^keyvault://[A-Za-z0-9-]{3,24}/[A-Za-z0-9-]{1,127}(/[0-9a-f]{32})?$")
#: Data references that are not local files: registered assets and URIs.
REMOTE_DATA_PREFIXES = ("azureml:", "https://", "http://")
MIN_EVAL_PATTERN = re.compile(r"^\s*(<=|>=|<|>|==)\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


class Task(str, enum.Enum):
    """What the fine-tuned model will do."""

    CHAT_COMPLETION = "chat-completion"
    TEXT_COMPLETION = "text-completion"
    TEXT_CLASSIFICATION = "text-classification"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"
    SUMMARIZATION = "summarization"
    TRANSLATION = "translation"


class Technique(str, enum.Enum):
    """How the weights are trained."""

    LORA = "lora"
    QLORA = "qlora"
    DORA = "dora"
    FULL = "full"


class Objective(str, enum.Enum):
    """What the training optimizes: supervised next-token loss, or a preference objective on chosen/rejected pairs."""

    SFT = "sft"
    DPO = "dpo"
    ORPO = "orpo"

    @property
    def is_preference(self) -> bool:
        return self is not Objective.SFT


class Precision(str, enum.Enum):
    """Training precision."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


class LrScheduler(str, enum.Enum):
    """Learning-rate schedules, as transformers names them."""

    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    INVERSE_SQRT = "inverse_sqrt"


class Optimizer(str, enum.Enum):
    """Optimizers the planner knows the memory of."""

    ADAMW_TORCH = "adamw_torch"
    ADAMW_8BIT = "adamw_8bit"
    PAGED_ADAMW_8BIT = "paged_adamw_8bit"


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        use_enum_values=False,
        populate_by_name=True,
    )


class DataColumns(StrictModel):
    """Column names in the data files: one field per logical column of the contract (azft_contract.COLUMN_KEYS)."""

    messages: Annotated[str | None, Field(description="Conversation column (chat completion).")] = None
    text: Annotated[str | None, Field(description="Text column (classification: first sentence).")] = None
    text_pair: Annotated[str | None, Field(description="Second sentence column for sentence-pair tasks.")] = (
        None
    )
    label: Annotated[str | None, Field(description="Label column (text classification).")] = None
    tokens: Annotated[str | None, Field(description="Token list column (token classification).")] = None
    tags: Annotated[str | None, Field(description="Tag list column (token classification).")] = None
    prompt: Annotated[
        str | None, Field(description="Prompt column (text completion; dpo/orpo: text or messages).")
    ] = None
    completion: Annotated[str | None, Field(description="Completion column (text completion).")] = None
    chosen: Annotated[
        str | None, Field(description="Preferred answer column (dpo, orpo): text or assistant messages.")
    ] = None
    rejected: Annotated[
        str | None, Field(description="Rejected answer column (dpo, orpo): text or assistant messages.")
    ] = None
    context: Annotated[str | None, Field(description="Context column (question answering).")] = None
    question: Annotated[str | None, Field(description="Question column (question answering).")] = None
    answers: Annotated[str | None, Field(description="Answers column (question answering).")] = None
    answer_text: Annotated[
        str | None,
        Field(description="Key of the answer texts inside the answers column (question answering)."),
    ] = None
    answer_start: Annotated[
        str | None,
        Field(description="Key of the answer offsets inside the answers column (question answering)."),
    ] = None
    source: Annotated[str | None, Field(description="Source text column (summarization, translation).")] = (
        None
    )
    target: Annotated[str | None, Field(description="Target text column (summarization, translation).")] = (
        None
    )
    source_lang: Annotated[str | None, Field(description="Source language code (translation), e.g. en.")] = (
        None
    )
    target_lang: Annotated[str | None, Field(description="Target language code (translation), e.g. de.")] = (
        None
    )
    translation: Annotated[
        str | None, Field(description='Column of {"<lang>": text} objects (translation, WMT style).')
    ] = None

    def as_dict(self) -> dict[str, str]:
        """The columns that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DataSpec(StrictModel):
    """The training data: local files, registered data assets or https URIs."""

    train: Annotated[
        str,
        Field(
            description="Training file: a local path (relative to the spec), azureml:<name>:<version>, "
            "azureml://..., or https:// without a SAS token.",
        ),
    ]
    validation: Annotated[str | None, Field(description="Validation file, same forms as train.")] = None
    test: Annotated[str | None, Field(description="Test file, same forms as train.")] = None
    columns: Annotated[
        DataColumns | None,
        Field(description="Column names for tabular tasks; defaults follow the Azure ML registry pipelines."),
    ] = None

    @field_validator("train", "validation", "test")
    @classmethod
    def _no_sas(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("must not be empty")
        if "?" in value and re.search(r"(^|[?&])sig=", value.split("?", 1)[1]):
            raise ValueError(
                "a URI carrying a SAS signature (sig=) is refused: it would be stored in the job for anyone "
                "with read access; register the file as a data asset or use an azureml://datastores/... URI"
            )
        return value

    def files(self) -> dict[str, str]:
        """The data references that are set, by role (train, validation, test)."""
        return {
            k: v
            for k, v in (("train", self.train), ("validation", self.validation), ("test", self.test))
            if v
        }

    @staticmethod
    def is_remote(reference: str) -> bool:
        """A registered asset or a URI (azureml:..., https://...), as opposed to a local path."""
        return reference.startswith(REMOTE_DATA_PREFIXES)

    def local_files(self) -> dict[str, str]:
        """The data references that are local paths (relative to the spec), by role."""
        return {role: ref for role, ref in self.files().items() if not self.is_remote(ref)}


class LoraSpec(StrictModel):
    """LoRA/DoRA adapter settings."""

    r: Annotated[int, Field(ge=1, le=1024, description="Adapter rank.")] = 16
    alpha: Annotated[int, Field(ge=1, le=4096, description="LoRA scaling alpha (scale = alpha / r).")] = 32
    dropout: Annotated[float, Field(ge=0.0, lt=1.0, description="Dropout on the adapter input.")] = 0.05
    target_modules: Annotated[
        Literal["auto", "all-linear"] | list[str],
        Field(description="'auto' = the model catalog's modules; 'all-linear'; or a list of module names."),
    ] = "auto"

    @field_validator("target_modules")
    @classmethod
    def _modules_not_empty(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("must name at least one module, or be 'auto'")
            for name in value:
                if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
                    raise ValueError(f"{name!r} is not a module name")
        return value


class QuantizationSpec(StrictModel):
    """bitsandbytes quantization of the frozen base (QLoRA)."""

    bits: Annotated[Literal[4, 8], Field(description="Bits of the quantized base; QLoRA needs 4.")] = 4
    type: Annotated[Literal["nf4", "fp4"], Field(description="4-bit data type.")] = "nf4"
    double_quant: Annotated[bool, Field(description="Quantize the quantization constants too.")] = True
    storage_dtype: Annotated[
        Literal["bf16", "fp16", "fp32", "uint8"] | None,
        Field(description="Storage dtype of the packed weights; unset = the compute dtype under ZeRO-3."),
    ] = None


class DeepSpeedSpec(StrictModel):
    """DeepSpeed ZeRO settings."""

    stage: Annotated[int, Field(ge=0, le=3, description="ZeRO stage 0-3.")] = 2
    offload_optimizer: Annotated[bool, Field(description="Offload optimizer states to CPU.")] = False
    offload_params: Annotated[bool, Field(description="Offload parameters to CPU (ZeRO-3 only).")] = False


def _dpo_loss_type(value: Any) -> Any:
    if value not in DPO_LOSS_TYPES:
        raise ValueError(f"must be one of {', '.join(DPO_LOSS_TYPES)}, got {value!r}")
    return value


class PreferenceSpec(StrictModel):
    """Settings of a preference objective (method.objective dpo or orpo)."""

    beta: Annotated[
        float,
        Field(
            gt=0,
            le=100,
            description="dpo: how far the policy may move from the reference (higher = closer); orpo: the weight "
            "of the odds-ratio term next to the chosen answers' loss.",
        ),
    ] = 0.1
    loss_type: Annotated[
        str,
        BeforeValidator(_dpo_loss_type),
        Field(description=f"dpo only: TRL's DPO loss, one of {', '.join(DPO_LOSS_TYPES)}."),
    ] = "sigmoid"
    reference: Annotated[
        Literal["auto", "precomputed"],
        Field(
            description="dpo only: auto = the frozen base through the adapter (lora, qlora, dora: no extra copy) "
            "or a frozen copy of the model (full); precomputed = the reference's log-probabilities computed once "
            "before training, no reference kept in memory (one extra pass over the data).",
        ),
    ] = "auto"


class MethodSpec(StrictModel):
    """The fine-tuning technique, the objective, and their settings."""

    technique: Annotated[Technique, Field(description="lora | qlora | dora | full.")] = Technique.LORA
    objective: Annotated[
        Objective,
        Field(description="sft (supervised) | dpo | orpo (preference pairs: prompt, chosen, rejected)."),
    ] = Objective.SFT
    preference: Annotated[
        PreferenceSpec | None, Field(description="Settings of the preference objective (dpo, orpo).")
    ] = None
    lora: Annotated[LoraSpec | None, Field(description="Adapter settings (lora, qlora, dora).")] = None
    quantization: Annotated[
        QuantizationSpec | None, Field(description="Quantization of the base (qlora only).")
    ] = None
    deepspeed: Annotated[DeepSpeedSpec | None, Field(description="DeepSpeed ZeRO (optional).")] = None
    optimizer: Annotated[Optimizer, Field(description="Optimizer.")] = Optimizer.ADAMW_TORCH

    @property
    def uses_adapter(self) -> bool:
        return self.technique is not Technique.FULL

    @property
    def effective_lora(self) -> LoraSpec:
        """The adapter settings, defaults filled in."""
        return self.lora or LoraSpec()

    @property
    def effective_preference(self) -> PreferenceSpec | None:
        """The preference settings, defaults filled in, for dpo and orpo; None for sft."""
        if not self.objective.is_preference:
            return None
        return self.preference or PreferenceSpec()

    @property
    def effective_quantization(self) -> QuantizationSpec | None:
        if self.technique is Technique.QLORA:
            return self.quantization or QuantizationSpec()
        return self.quantization


MAX_SEQ_LENGTH_RANGE = (16, 131072)


def _sequence_length(value: Any) -> Any:
    """training.max_seq_length: a whole number of tokens in range, or "auto" (one clear message for both)."""
    if value == "auto":
        return value
    low, high = MAX_SEQ_LENGTH_RANGE
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a number of tokens or auto (the model's maximum), got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"must be ≥ {low} and ≤ {high} tokens, or auto (the model's maximum); got {value}")
    return value


class TrainingSpec(StrictModel):
    """Training hyperparameters."""

    epochs: Annotated[float, Field(gt=0, le=100, description="Passes over the training data.")] = 3
    max_steps: Annotated[int, Field(ge=-1, description="Stop after this many steps; -1 = by epochs.")] = -1
    learning_rate: Annotated[float, Field(gt=0, le=0.1, description="Peak learning rate.")] = 2.0e-4
    lr_scheduler: Annotated[LrScheduler, Field(description="Learning-rate schedule.")] = LrScheduler.COSINE
    warmup_ratio: Annotated[float, Field(ge=0, le=0.5, description="Share of steps spent warming up.")] = 0.03
    per_device_batch_size: Annotated[int, Field(ge=1, le=512, description="Micro-batch per GPU.")] = 4
    gradient_accumulation_steps: Annotated[
        int, Field(ge=1, le=1024, description="Micro-batches per step.")
    ] = 4
    max_seq_length: Annotated[
        int | Literal["auto"],
        BeforeValidator(_sequence_length),
        Field(
            description="Tokens per example; longer ones are truncated. 'auto' = the model's own maximum "
            "(registry pipelines: the component's -1)."
        ),
    ] = 2048
    precision: Annotated[Precision, Field(description="bf16 needs compute capability >= 8.0.")] = (
        Precision.BF16
    )
    gradient_checkpointing: Annotated[bool, Field(description="Recompute activations to save memory.")] = True
    packing: Annotated[bool, Field(description="Pack several short examples into one sequence.")] = False
    mask_prompt: Annotated[bool, Field(description="Chat: compute the loss on assistant tokens only.")] = True
    seed: Annotated[int, Field(ge=0, le=2**32 - 1, description="Random seed.")] = 42
    logging_steps: Annotated[int, Field(ge=1, le=100000, description="Log metrics every N steps.")] = 10
    metric_for_best_model: Annotated[
        str | None,
        Field(
            description="Evaluation metric that picks the checkpoint kept at the end (loss, accuracy, f1_macro, "
            "...; the target lists its own); needs validation data.",
        ),
    ] = None
    save_total_limit: Annotated[
        int | None,
        Field(
            ge=-1, description="Checkpoints kept during training: N ≥ 1 the newest N (and the best), -1 all."
        ),
    ] = None
    save_steps: Annotated[
        int | None,
        Field(
            ge=1,
            description="Save a resumable checkpoint every N optimizer steps (to the job's `checkpoints` output, "
            "which survives a pre-emption; a restarted job resumes from the newest). Unset: no step checkpoints.",
        ),
    ] = None
    resume_from: Annotated[
        str | None,
        Field(
            description="An Azure ML job whose `checkpoints` output this job resumes from (its newest complete "
            "checkpoint); `azfinetune submit SPEC --resume-from JOB` sets it.",
        ),
    ] = None

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (train by epochs) or at least 1, got 0")
        return value

    @field_validator("metric_for_best_model")
    @classmethod
    def _metric_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(
                f"must be a metric name such as loss or f1_macro (lowercase, digits, '_'), got {value!r}"
            )
        return value

    @field_validator("save_total_limit")
    @classmethod
    def _checkpoints(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must be -1 (keep every checkpoint) or at least 1, got 0")
        return value

    @field_validator("resume_from")
    @classmethod
    def _job_name(cls, value: str | None) -> str | None:
        if value is not None and not JOB_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"must be the name of an Azure ML job (letters, digits, '-', '_'), got {value!r}; "
                "`azfinetune list` shows your jobs"
            )
        return value

    @property
    def saves_checkpoints(self) -> bool:
        """Whether the run writes checkpoint-N folders: every save_steps steps, or one per epoch when
        save_total_limit or metric_for_best_model ask for checkpoints without save_steps."""
        return (
            self.save_steps is not None
            or self.save_total_limit is not None
            or self.metric_for_best_model is not None
        )


class RegisterSpec(StrictModel):
    """Register the result as an MLflow model."""

    model_name: Annotated[str, Field(description="Registered model name.")]
    description: Annotated[str | None, Field(description="Registered model description.")] = None
    min_eval: Annotated[
        dict[str, str] | None,
        Field(description="Register only if evaluation passes, e.g. {eval_loss: '<= 1.2'}."),
    ] = None

    @field_validator("model_name")
    @classmethod
    def _asset_name(cls, value: str) -> str:
        if not ASSET_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid Azure ML asset name (letters, digits, '-', '_', '.', up to 255)"
            )
        return value

    @field_validator("min_eval")
    @classmethod
    def _thresholds(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for metric, condition in (value or {}).items():
            if not MIN_EVAL_PATTERN.fullmatch(str(condition)):
                raise ValueError(
                    f"threshold for {metric!r} must look like '<= 1.2' (one of <=, >=, <, >, ==), got {condition!r}"
                )
        return value


#: The precisions onnxruntime-genai's model builder writes for each execution provider (its -p/-e pairs).
ONNX_PRECISIONS: dict[str, tuple[str, ...]] = {
    "cpu": ("int4", "int8", "fp32"),
    "cuda": ("int4", "fp16", "fp32"),
    "dml": ("int4", "fp16", "fp32"),
    "webgpu": ("int4", "fp16", "fp32"),
}


class OnnxExportSpec(StrictModel):
    """ONNX Runtime export after training: onnxruntime-genai's model builder, then a token parity check."""

    precision: Annotated[
        Literal["int4", "int8", "fp16", "fp32"], Field(description="Weight precision of the ONNX model.")
    ] = "int4"
    execution_provider: Annotated[
        Literal["cpu", "cuda", "dml", "webgpu"], Field(description="The ONNX Runtime execution provider.")
    ] = "cpu"
    adapters: Annotated[
        Literal["merged", "separate"],
        Field(description="merged: adapter baked into the graph; separate: base graph + .onnx_adapter file."),
    ] = "merged"
    min_token_agreement: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description="Fail the export when greedy tokens agree with PyTorch less than this.",
        ),
    ] = 1.0

    @model_validator(mode="after")
    def _provider_precision(self) -> OnnxExportSpec:
        allowed = ONNX_PRECISIONS[self.execution_provider]
        if self.precision not in allowed:
            raise ValueError(
                f"precision {self.precision} does not exist for execution_provider {self.execution_provider}: "
                f"use one of {', '.join(allowed)}"
            )
        return self


class ExportSpec(StrictModel):
    """What the job exports the fine-tuned model to after training."""

    onnx: Annotated[OnnxExportSpec | None, Field(description="ONNX Runtime (onnxruntime-genai) export.")] = (
        None
    )


class WorkspaceSpec(StrictModel):
    """The Azure ML workspace; else config.json, AZURE_* variables or flags."""

    subscription_id: Annotated[str, Field(description="Azure subscription id.")]
    resource_group: Annotated[str, Field(description="Resource group.")]
    name: Annotated[str, Field(description="Workspace name.")]

    @field_validator("subscription_id")
    @classmethod
    def _subscription_guid(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value):
            raise ValueError("must be a subscription id GUID like 00000000-0000-0000-0000-000000000000")
        return value

    @field_validator("resource_group")
    @classmethod
    def _resource_group_name(cls, value: str) -> str:
        if not re.fullmatch(r"[-\w._()]{1,90}", value) or value.endswith("."):
            raise ValueError(
                "a resource group name is 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
            )
        return value

    @field_validator("name")
    @classmethod
    def _workspace_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,32}", value):
            raise ValueError(
                "a workspace name is 3-33 letters, digits, '-' or '_', starting with a letter or digit"
            )
        return value


# `register` is a spec key (DESIGN.md) that pydantic warns shadows ABCMeta.register; instances are unaffected.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


#: training keys that a spec hashes only when set (their default None leaves older job names unchanged).
_LATER_TRAINING_KEYS = ("save_steps", "resume_from")


class FineTuneSpec(StrictModel):
    """One fine-tuning job: model, data, technique, training settings and where it runs."""

    name: Annotated[
        str,
        Field(
            description="Job/experiment name: lowercase letters, digits, '-', '_'; starts with a letter; <= 64."
        ),
    ]
    description: Annotated[str | None, Field(description="Free text shown in Azure ML Studio.")] = None
    task: Annotated[Task, Field(description="The task the model is fine-tuned for.")] = Task.CHAT_COMPLETION
    model: Annotated[
        str,
        Field(
            description="Catalog alias | azureml://registries/<reg>/models/<name>/versions/<v> | hf:<org>/<name> "
            "| a local folder (local backend only).",
        ),
    ]
    model_shape: Annotated[
        str | dict[str, int | float | str | bool | None] | None,
        Field(
            description="For the planner, a model the catalog cannot size: a config.json (or a model folder) "
            "path relative to the spec, or its config.json numbers (model_type, hidden_size, "
            "num_hidden_layers, ...)."
        ),
    ] = None
    data: Annotated[DataSpec, Field(description="Training, validation and test data.")]
    method: Annotated[MethodSpec, Field(description="Technique and its settings.")] = MethodSpec()
    training: Annotated[TrainingSpec, Field(description="Training hyperparameters.")] = TrainingSpec()
    target: Annotated[
        TargetSpec,
        Field(description="Where the job runs: one of the target kinds and its fields; default local."),
    ] = LocalTarget()
    register: Annotated[RegisterSpec | None, Field(description="Register the result as an MLflow model.")] = (
        None
    )
    export: Annotated[ExportSpec | None, Field(description="Exports after training (ONNX Runtime).")] = None
    environment: Annotated[
        str,
        Field(
            description="Environment folder (relative to the project), azureml:<name>:<version> or a curated name."
        ),
    ] = "environments/finetune-gpu"
    workspace: Annotated[WorkspaceSpec | None, Field(description="The Azure ML workspace.")] = None
    secrets: Annotated[
        dict[str, str],
        Field(
            description="Environment variables resolved from Key Vault in the job: NAME: keyvault://<vault>/<secret>."
        ),
    ] = {}
    tags: Annotated[dict[str, str], Field(description="Tags on the Azure ML job.")] = {}

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str | None = PrivateAttr(default=None)
    _positions: dict[tuple[str | int, ...], tuple[int, int]] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise spec_error_from_validation(error, type(self), data) from None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not usable as an Azure ML job name: use lowercase letters, digits, '-' and '_', "
                "start with a letter, at most 64 characters"
            )
        return value

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if value.startswith("azureml://") and not re.fullmatch(
            r"azureml://registries/[A-Za-z0-9_-]+/models/[A-Za-z0-9_.-]+/(versions/[0-9A-Za-z.]+|labels/latest)",
            value,
        ):
            raise ValueError(
                "a registry model must look like azureml://registries/<registry>/models/<name>/versions/<version>"
            )
        if value.startswith("hf:") and not re.fullmatch(r"hf:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
            raise ValueError("a Hugging Face model must look like hf:<org>/<name>")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_refs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not ENV_VAR_PATTERN.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not KEYVAULT_REF_PATTERN.fullmatch(str(ref)):
                # Never echo the value: it may be the secret itself.
                raise ValueError(
                    f"{name} must be a Key Vault reference keyvault://<vault>/<secret>, not a literal value "
                    "(the value was not printed)"
                )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith("azfinetune."):
                raise ValueError(f"tag {key!r}: the 'azfinetune.' prefix is reserved")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> FineTuneSpec:
        issues = cross_field_issues(self)
        if issues:
            raise SpecError(issues)
        return self

    # -- helpers used by the rest of the package -------------------------------------------------

    @property
    def data_kind(self) -> str:
        """What the data files hold, as the contract's readers name it: the task (sft) or "preference" (dpo, orpo)."""
        return data_kind(self.task.value, self.method.objective.value)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the spec are relative to (the spec file's folder)."""
        return self._base_dir

    @property
    def source(self) -> str | None:
        """The spec file this spec was loaded from, if any."""
        return self._source

    def resolve_path(self, value: str) -> Path:
        """A local path from the spec, made absolute against the spec's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self._base_dir / path)

    def position(self, path: str) -> tuple[int, int] | None:
        """(line, column) of a dotted key path in the spec file, when loaded from one."""
        key = split_path(path)
        while key:
            if key in self._positions:
                return self._positions[key]
            key = key[:-1]
        return None

    def canonical_dict(self) -> dict[str, Any]:
        """The spec with defaults filled in, JSON-ready, in a stable order (the basis of its hash)."""
        # A spec without export hashes as it did before the section existed (job names stay the same).
        # model_shape only informs the planner: it never changes the job.
        exclude: dict[str, Any] = dict.fromkeys({"workspace", "description", "model_shape"}, True)
        if self.export is None:
            exclude["export"] = True
        # Likewise the checkpoint keys added later: unset, a spec keeps the job name it had before them.
        unset = {key for key in _LATER_TRAINING_KEYS if getattr(self.training, key) is None}
        if unset:
            exclude["training"] = unset
        data: dict[str, Any] = json.loads(self.model_dump_json(exclude=exclude))
        # Likewise an sft spec hashes as it did before method.objective existed.
        method = data["method"]
        if method.get("objective") == Objective.SFT.value and method.get("preference") is None:
            del method["objective"], method["preference"]
        return data

    def content_hash(self, *extra: str) -> str:
        """sha256 of the canonical spec (plus any extra strings, e.g. data file hashes)."""
        digest = hashlib.sha256(json.dumps(self.canonical_dict(), sort_keys=True).encode())
        for item in extra:
            digest.update(b"\0" + item.encode())
        return digest.hexdigest()

    def with_base_dir(self, base_dir: Path, *, source: str | None = None) -> FineTuneSpec:
        self._base_dir = base_dir
        self._source = source
        return self
