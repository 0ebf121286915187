"""The training run: precision and device checks, data, model, SFTTrainer or Trainer, outputs and metrics."""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune import data as datalib
from finetune import export, modeling, tracking
from finetune.args import CAUSAL_TASKS, Args, checkpoint_settings, resolve_max_seq_length
from finetune.checkpoints import Checkpoint, checkpoint_root, resume_metrics, resume_point
from finetune.errors import TrainingError, UsageError

log = logging.getLogger("finetune")


@dataclass
class Runtime:
    """Facts about where this process runs, decided once at start-up."""

    cuda: bool
    precision: str
    compute_dtype: Any
    world_size: int
    local_rank: int
    is_main: bool
    zero_stage: int | None
    deepspeed_config: str | None
    tracking_uri: str | None = None
    resume: Checkpoint | None = None  # the checkpoint this run continues from (checkpoints.py)


def _quiet_libraries() -> None:
    import datasets
    import transformers

    # Azure ML captures stdout: progress bars would flood it; AZFT_PROGRESS lines replace them.
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()


def _runtime(args: Args) -> Runtime:
    import torch

    cuda = torch.cuda.is_available()
    precision = args.precision
    if not cuda and precision != "fp32":
        log.warning("no CUDA device: %s mixed precision is not available on CPU, training in fp32", precision)
        precision = "fp32"
    elif cuda and precision == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support: training in fp16 instead")
        precision = "fp16"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    needs_bnb = args.technique == "qlora" or "8bit" in args.optimizer or args.optimizer.startswith("paged_")
    if needs_bnb and _missing("bitsandbytes"):
        raise UsageError(
            "bitsandbytes is not installed (azfinetune's `deepspeed` extra has it, and the finetune-gpu image)"
        )
    if not cuda and args.optimizer.startswith("paged_"):
        log.warning("--optimizer %s on CPU: paging needs CUDA, bitsandbytes runs it unpaged", args.optimizer)
    deepspeed_config, zero_stage = None, None
    if args.deepspeed is not None:
        if not cuda:
            # Before the first `import deepspeed` (transformers imports it lazily): pick its CPU accelerator.
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if _missing("deepspeed"):
            raise UsageError(
                "deepspeed is not installed (azfinetune's `deepspeed` extra has it, and the finetune-gpu image)"
            )
        deepspeed_config, zero_stage = _deepspeed_config(args.deepspeed)
        if not cuda:
            _warn_offload_on_cpu(deepspeed_config)
        _single_process_group_env()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if not cuda:
        # Said once, and recorded in metrics.json: CPU tokens/s and memory say nothing about a GPU job.
        log.warning(
            "no CUDA device: this is a correctness run on CPU, not a speed run (tokens/s and peak memory "
            "are not those of a GPU job)"
        )
    return Runtime(
        cuda=cuda,
        precision=precision,
        compute_dtype=dtype,
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        is_main=os.environ.get("RANK", "0") == "0",
        zero_stage=zero_stage,
        deepspeed_config=deepspeed_config,
    )


def _single_process_group_env() -> None:
    """A plain `python -m finetune --deepspeed ...` (one GPU, no launcher): DeepSpeed still wants a process group."""
    if "RANK" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
        return  # torchrun / Azure ML PyTorch or MPI distribution set these up
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    os.environ.update({**defaults, "MASTER_PORT": str(port)})


def _warn_offload_on_cpu(config_path: str) -> None:
    zero = json.loads(Path(config_path).read_text(encoding="utf-8")).get("zero_optimization") or {}
    offloaded = [key for key in ("offload_optimizer", "offload_param") if zero.get(key)]
    if offloaded:
        # Measured on 2 cores: the first such run spent about 7 minutes compiling (cached in TORCH_EXTENSIONS_DIR).
        log.warning(
            "no CUDA device: DeepSpeed offload (%s) moves nothing (the weights are in CPU memory already), "
            "and it compiles its CPU Adam op on the first run, for minutes",
            " and ".join(offloaded),
        )


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _deepspeed_config(path: Path) -> tuple[str, int]:
    """The config path for TrainingArguments; ZeRO-3 configs get 16-bit weight gathering on save turned on."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--deepspeed {path}: not a readable JSON file ({exc})") from exc
    zero = config.get("zero_optimization") or {}
    stage = int(zero.get("stage", 0))
    if stage == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
        # Without it the saved adapter/model is empty (0-element tensors): gather on save.
        log.warning("ZeRO-3 config without stage3_gather_16bit_weights_on_model_save: switching it on")
        zero["stage3_gather_16bit_weights_on_model_save"] = True
        config["zero_optimization"] = zero
        patched = Path(tempfile.mkdtemp(prefix="azft-ds-")) / path.name
        patched.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return str(patched), stage
    return str(path), stage


def _common_training_kwargs(args: Args, rt: Runtime, has_eval: bool) -> dict[str, Any]:
    evaluate_during = has_eval and args.eval_steps is not None
    return {
        "output_dir": str(checkpoint_root(args)),  # checkpoint-N folders; the model: save_model
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": args.lr_scheduler,
        "warmup_steps": args.warmup_ratio,  # a float below 1 is a ratio of the total steps
        "per_device_train_batch_size": args.per_device_batch_size,
        "per_device_eval_batch_size": args.per_device_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "bf16": rt.precision == "bf16",
        "fp16": rt.precision == "fp16",
        **_checkpointing_kwargs(args),
        "seed": args.seed,
        "data_seed": args.seed,
        "optim": args.optimizer,
        "logging_strategy": "steps",
        "logging_steps": args.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if evaluate_during else "no",
        "eval_steps": args.eval_steps if evaluate_during else None,
        "save_strategy": "no",
        "report_to": ["mlflow"] if rt.tracking_uri else "none",
        "run_name": f"{args.task}-{args.technique}",
        "disable_tqdm": True,
        "deepspeed": rt.deepspeed_config,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": rt.cuda,
        **_backend_kwargs(rt),
        # Adapters under DDP: every trainable parameter gets a gradient; skipping the search saves a pass.
        "ddp_find_unused_parameters": False if args.is_peft and rt.world_size > 1 else None,
        **checkpoint_settings(args, has_eval),  # --metric-for-best-model / --save-total-limit (args.py)
    }


def _backend_kwargs(rt: Runtime) -> dict[str, Any]:
    """gloo for DeepSpeed or several processes without CUDA; on GPUs accelerate picks NCCL itself.

    accelerate finds no backend for DeepSpeed on CPU: it then counts one process while DeepSpeed's gloo group
    has them all, and with two processes the batch-size check, then a gloo allgather, fail. TrainingArguments
    passes no ddp_backend under DeepSpeed, so the process state is set up here, with gloo, and the Trainer
    is told to use it as configured.
    """
    if rt.cuda:
        return {}
    if rt.deepspeed_config is not None:
        from accelerate import PartialState

        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"  # what TrainingArguments sets around its own call
        try:
            PartialState(backend="gloo")
        finally:
            del os.environ["ACCELERATE_USE_DEEPSPEED"]
        return {"accelerator_config": {"use_configured_state": True}}
    return {"ddp_backend": "gloo"} if rt.world_size > 1 else {}


def _checkpointing_kwargs(args: Args) -> dict[str, Any]:
    import dataclasses

    from transformers import TrainingArguments

    # transformers 5.2x renamed gradient_checkpointing* to activation_checkpointing* (old names still work).
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {
        f"{prefix}_checkpointing": args.gradient_checkpointing,
        f"{prefix}_checkpointing_kwargs": {"use_reentrant": False} if args.gradient_checkpointing else None,
    }


def _logical_numel(param: Any) -> int:
    """The weights a parameter holds, not its storage elements.

    A bitsandbytes 4-bit weight packs 2 values per uint8 element, or 8 per element when ZeRO-3 stores it in
    fp32: its quant_state keeps the real shape.
    """
    shape = getattr(getattr(param, "quant_state", None), "shape", None)  # bitsandbytes Params4bit
    if shape is not None:
        count = 1
        for dim in shape:
            count *= int(dim)
        return count
    return int(getattr(param, "ds_numel", 0) or param.numel())  # ZeRO-3 keeps the real size in ds_numel


def _count_parameters(model: Any) -> tuple[int, int]:
    trainable = total = 0
    for param in model.parameters():
        count = _logical_numel(param)
        total += count
        if param.requires_grad:
            trainable += count
    return trainable, total


def target_count(labels: Any, *, causal: bool) -> Any:
    """How many targets a batch's loss averages over: next-token labels that are not -100, or one per example."""
    if causal:
        return (labels[..., 1:] != datalib.IGNORE_INDEX).sum()
    if labels.dim() == 1:
        return labels.new_tensor(labels.numel())
    return (labels != datalib.IGNORE_INDEX).sum()


def _first_rows(value: Any, rows: int, keep: int) -> Any:
    shape = getattr(value, "shape", None)
    return value[:keep] if shape is not None and len(shape) > 0 and shape[0] == rows else value


def with_token_mean_eval_loss(trainer_class: Any, *, causal: bool) -> Any:
    """`trainer_class` whose eval_loss/test_loss is the mean over every target token of the split.

    The Trainer's own is a mean of batch means, which depends on the batch size and on how the examples fall
    into batches; the evaluate step (jobs/src/evaluate_model) reports the token mean, and register.min_eval
    compares the two. Training is unchanged.
    """
    import torch

    class TokenMeanEvalLoss(trainer_class):  # type: ignore[misc, valid-type]
        _eval_totals: Any = None

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if self.model.training or self._eval_totals is None or inputs.get("labels") is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            rows = int(inputs["labels"].shape[0])
            real = self._real_rows(rows)
            # Only this process's real examples count. One forward per batch whatever `real` is: under ZeRO-3
            # every process must join each forward's parameter gathering.
            scored = (
                inputs if real in (0, rows) else {k: _first_rows(v, rows, real) for k, v in inputs.items()}
            )
            count = target_count(scored["labels"], causal=causal)
            # No num_items_in_batch: the loss is then the batch mean of these rows, unscaled across processes.
            result = super().compute_loss(model, scored, return_outputs=return_outputs)
            loss = result[0] if return_outputs else result
            if real > 0:
                self._eval_totals += torch.stack([loss.detach().double() * count, count.double()])
            return result

        def _real_rows(self, rows: int) -> int:
            """Rows of this batch that are examples of the split, not accelerate's repeats.

            Under several processes accelerate fills the last round of batches with repeated examples so that
            every process has a full batch; its gather_for_metrics keeps the first `remainder` rows of the
            gathered batch (process 0's rows, then process 1's, ...): the same rows count here.
            """
            state = self.accelerator.gradient_state
            if self.accelerator.num_processes == 1 or not state.end_of_dataloader or state.remainder <= 0:
                return rows
            first = self.accelerator.process_index * rows
            return max(0, min(rows, state.remainder - first))

        def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
            self._eval_totals = torch.zeros(2, dtype=torch.float64, device=self.args.device)
            try:
                output = super().evaluation_loop(*args, **kwargs)
                totals = self.accelerator.reduce(self._eval_totals, reduction="sum")
            finally:
                self._eval_totals = None
            prefix = kwargs.get("metric_key_prefix", "eval")
            if f"{prefix}_loss" in output.metrics and float(totals[1]) > 0:
                output.metrics[f"{prefix}_loss"] = float(totals[0] / totals[1])
            return output

    TokenMeanEvalLoss.__name__ = TokenMeanEvalLoss.__qualname__ = f"{trainer_class.__name__}TokenMeanEval"
    return TokenMeanEvalLoss


@dataclass
class Trained:
    trainer: Any
    train_result: Any
    tokens: int
    train_samples: int
    eval_metrics: dict[str, float]
    test_metrics: dict[str, float]
    trainable: int
    total: int
    reload: Any  # () -> a fresh base model for merging
    extra: dict[str, Any]


def _device_map(args: Args, rt: Runtime) -> Any:
    # Quantized weights must be placed at load time; ZeRO-3 places (shards) them itself.
    if args.technique == "qlora" and rt.zero_stage != 3:
        return {"": rt.local_rank if rt.cuda else "cpu"}
    return None


def _load_dtype(args: Args, rt: Runtime) -> Any:
    import torch

    # Adapters train on a frozen 16-bit base; full fine-tuning keeps fp32 weights unless DeepSpeed owns them.
    if args.is_peft or rt.deepspeed_config is not None:
        return rt.compute_dtype
    return torch.float32


def _export_dtype(rt: Runtime) -> Any:
    import torch

    return rt.compute_dtype if rt.cuda else torch.float32


def _prepare_kbit(model: Any, args: Args, rt: Runtime) -> Any:
    if args.technique != "qlora" or rt.zero_stage == 3:
        # Sharded QLoRA (ZeRO-3): upcasting norms to fp32 would break ZeRO-3's one-dtype parameter groups.
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


def _final_eval(trainer: Any) -> dict[str, float]:
    # An eval at the last step (eval_steps dividing max_steps) already measured the final model.
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    best_loaded = trainer.args.load_best_model_at_end  # the last eval measured another checkpoint
    if evals and evals[-1].get("step") == trainer.state.global_step and not best_loaded:
        return {key: value for key, value in evals[-1].items() if key.startswith("eval_")}
    metrics: dict[str, float] = trainer.evaluate()
    return metrics


def _detach_mlflow(trainer: Any) -> None:
    # The HF MLflow callback ends its run when training ends; evaluations after that would open a second run.
    # Their numbers go to the training run as final_* metrics instead (tracking.log_final_metrics).
    from transformers.integrations import MLflowCallback

    trainer.remove_callback(MLflowCallback)


def _start_tracking(trainer: Any, tracking_uri: str | None) -> None:
    # Open the MLflow run and log the training parameters before the Trainer's clock starts: train_runtime and
    # tokens/s then measure training alone, and a tracking problem shows up before the GPUs are busy.
    from transformers.integrations import MLflowCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, MLflowCallback):
            callback.setup(trainer.args, trainer.state, trainer.model)
            if trainer.state.is_world_process_zero:  # only rank 0 logs
                tracking.flush()  # the parameters are written now, not by threads racing the first steps
            if tracking.is_local_store(tracking_uri):
                # The callback logs asynchronously: worker threads then write each metric file while the
                # training thread runs, and every write takes the GIL from it. Writing a local file store
                # costs about 3 ms per logging step, so it is cheaper on the training thread itself (measured:
                # about 10% more steady-state tokens/s on the tiny benchmark model). A remote store (Azure ML)
                # stays asynchronous: an HTTP round trip must not stall a training step.
                callback._async_log = False


def _train_loop(trainer: Any, rt: Runtime) -> Any:
    import torch

    _start_tracking(trainer, rt.tracking_uri)
    try:
        started = time.process_time()
        result = trainer.train(resume_from_checkpoint=str(rt.resume.path) if rt.resume else None)
        # CPU seconds of this process in the training loop: a throughput measure that shared machines disturb less.
        result.metrics["train_cpu_seconds"] = time.process_time() - started
        return result
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainingError(
            f"CUDA out of memory: {exc}. Lower --per-device-batch-size or --max-seq-length, turn on "
            "--gradient-checkpointing, or use qlora / a DeepSpeed ZeRO-3 config."
        ) from exc


def _load_model(
    source: modeling.ModelSource,
    args: Args,
    rt: Runtime,
    auto_class: Any,
    extra: dict[str, Any] | None = None,
) -> Any:
    quantization = (
        modeling.quantization_config(args, rt.compute_dtype, rt.zero_stage == 3)
        if args.technique == "qlora"
        else None
    )
    return modeling.load_model(
        source,
        args,
        auto_class=auto_class,
        dtype=_load_dtype(args, rt),
        quantization=quantization,
        device_map=_device_map(args, rt),
        extra=extra,
    )


def _fit(
    trainer: Any, rt: Runtime, eval_ds: Any, test_ds: Any
) -> tuple[int, int, Any, dict[str, float], dict[str, float]]:
    """Train, then evaluate on validation and test: trainable/total parameters, the result, both metrics."""
    trainable, total = _count_parameters(trainer.model)
    result = _train_loop(trainer, rt)
    _detach_mlflow(trainer)
    eval_metrics = _final_eval(trainer) if eval_ds is not None else {}
    test_metrics = trainer.evaluate(test_ds, metric_key_prefix="test") if test_ds is not None else {}
    return trainable, total, result, eval_metrics, test_metrics


def _causal_model(source: modeling.ModelSource, args: Args, rt: Runtime) -> tuple[Any, Any]:
    """(the causal LM to train, its PEFT LoraConfig or None): loaded for training (no KV cache), k-bit prepared
    for qlora, the adapter's target modules resolved on the loaded model."""
    from transformers import AutoModelForCausalLM

    model = _load_model(source, args, rt, AutoModelForCausalLM)
    model.config.use_cache = False
    if not args.is_peft:
        return model, None
    targets = modeling.resolve_target_modules(model, args, ())
    model = _prepare_kbit(model, args, rt)
    return model, modeling.lora_config(args, targets, "CAUSAL_LM", None)


def _causal_reloader(source: modeling.ModelSource, rt: Runtime) -> Any:
    """What Trained.reload does for a causal LM: the base model again, in the export dtype."""

    def reload() -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(source.model, dtype=_export_dtype(rt))

    return reload


def train_causal(
    args: Args,
    splits: datalib.Splits,
    rt: Runtime,
    source: modeling.ModelSource,
    tokenizer: Any,
    progress: Any,
) -> Trained:
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    if args.task == "chat-completion":
        datalib.ensure_chat_template(tokenizer)
    train_ds = datalib.causal_dataset(splits.train, tokenizer, args, "train")
    eval_ds = (
        datalib.causal_dataset(splits.validation, tokenizer, args, "validation")
        if splits.validation
        else None
    )
    test_ds = datalib.causal_dataset(splits.test, tokenizer, args, "test") if splits.test else None
    prompt_completion = "prompt" in train_ds.column_names

    # Built before the model: under ZeRO-3 the arguments switch on sharded loading (zero.Init).
    config = SFTConfig(
        **_common_training_kwargs(args, rt, eval_ds is not None),
        max_length=args.max_seq_length,
        packing=args.packing,
        dataset_text_field="text",
        completion_only_loss=args.mask_prompt if prompt_completion else None,
    )
    model, peft_config = _causal_model(source, args, rt)
    trainer = with_token_mean_eval_loss(SFTTrainer, causal=True)(
        model=model,
        args=config,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)
    if args.technique == "qlora" and rt.precision == "fp16":
        # TRL casts QLoRA adapters to bf16; the fp16 grad scaler needs fp32 trainable weights.
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    trainable, total, result, eval_metrics, test_metrics = _fit(trainer, rt, eval_ds, test_ds)
    tokens = int(
        getattr(trainer, "_total_train_tokens", 0) or progress.tokens or trainer.state.num_input_tokens_seen
    )

    reload = _causal_reloader(source, rt)
    return Trained(
        trainer, result, tokens, len(train_ds), eval_metrics, test_metrics, trainable, total, reload, {}
    )


def _preference_trainer_classes(objective: str) -> tuple[Any, Any]:
    """(Config, Trainer) of TRL for dpo or orpo. ORPO moved to trl.experimental.orpo in TRL 0.2x; older TRL
    exports it at the top level."""
    if objective == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer
    try:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError:
        from trl import ORPOConfig, ORPOTrainer  # type: ignore[attr-defined, no-redef]
    return ORPOConfig, ORPOTrainer


def _pair_tokens_trained(trainer: Any) -> int:
    """Tokens trained on, from the tokenized pairs (both sides) and the epochs run: ORPOTrainer counts none itself."""
    dataset = trainer.train_dataset
    columns = [name for name in ("chosen_input_ids", "rejected_input_ids") if name in dataset.column_names]
    per_epoch = sum(len(ids) for name in columns for ids in dataset[name])
    return round(per_epoch * float(trainer.state.epoch or 0))


def train_preference(
    args: Args,
    splits: datalib.Splits,
    rt: Runtime,
    source: modeling.ModelSource,
    tokenizer: Any,
    progress: Any,
) -> Trained:
    """--objective dpo or orpo: TRL's DPOTrainer or ORPOTrainer on prompt/chosen/rejected pairs.

    The reference policy of dpo: with an adapter (lora, qlora, dora) the frozen base itself, reached by switching
    the adapter off (TRL does, no second copy in memory); for full fine-tuning a frozen copy of the model loaded
    here; with --reference precomputed the reference's log-probabilities are computed once before training and no
    reference is kept. orpo has no reference model."""
    from transformers import AutoModelForCausalLM, PrinterCallback

    config_class, trainer_class = _preference_trainer_classes(args.objective)
    if datalib.is_conversational_pairs(splits.train):
        datalib.ensure_chat_template(tokenizer)
    train_ds = datalib.preference_dataset(splits.train)
    eval_ds = datalib.preference_dataset(splits.validation) if splits.validation else None
    test_ds = datalib.preference_dataset(splits.test) if splits.test else None

    settings: dict[str, Any] = {"max_length": args.max_seq_length, "beta": args.beta}
    if args.objective == "dpo":
        settings.update(loss_type=[args.loss_type], precompute_ref_log_probs=args.reference == "precomputed")
    # Built before the model: under ZeRO-3 the arguments switch on sharded loading (zero.Init).
    config = config_class(**_common_training_kwargs(args, rt, eval_ds is not None), **settings)
    model, peft_config = _causal_model(source, args, rt)
    extra: dict[str, Any] = {}
    reference = "none"
    if args.objective == "dpo":
        if args.is_peft:
            reference = "base model (adapter disabled)"
        elif args.reference == "precomputed":
            reference = "precomputed log-probabilities"
        else:
            ref_model = _load_model(source, args, rt, AutoModelForCausalLM)
            ref_model.config.use_cache = False
            ref_model.requires_grad_(False)
            extra["ref_model"] = ref_model.eval()
            reference = "frozen copy of the model"
        log.info("dpo reference policy: %s", reference)
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
        **extra,
    )
    trainer.remove_callback(PrinterCallback)
    trainable, total, result, eval_metrics, test_metrics = _fit(trainer, rt, eval_ds, test_ds)
    tokens = int(
        getattr(trainer, "_total_train_tokens", 0)
        or progress.tokens
        or trainer.state.num_input_tokens_seen
        or _pair_tokens_trained(trainer)
    )

    reload = _causal_reloader(source, rt)
    info = {"objective": args.objective, "beta": args.beta, "reference_policy": reference}
    if args.objective == "dpo":
        info["loss_type"] = args.loss_type
    return Trained(
        trainer, result, tokens, len(train_ds), eval_metrics, test_metrics, trainable, total, reload, info
    )


def train_classifier(
    args: Args,
    splits: datalib.Splits,
    rt: Runtime,
    source: modeling.ModelSource,
    tokenizer: Any,
    progress: Any,
) -> Trained:
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    sequence = args.task == "text-classification"
    auto_class = AutoModelForSequenceClassification if sequence else AutoModelForTokenClassification
    build = datalib.classification_dataset if sequence else datalib.token_classification_dataset
    names = datalib.label_names(splits.train, args)
    label2id = {name: index for index, name in enumerate(names)}
    id2label = dict(enumerate(names))
    train_ds = build(splits.train, tokenizer, args, label2id, "train")
    eval_ds = build(splits.validation, tokenizer, args, label2id, "validation") if splits.validation else None
    test_ds = build(splits.test, tokenizer, args, label2id, "test") if splits.test else None

    training_args = TrainingArguments(
        **_common_training_kwargs(args, rt, eval_ds is not None), include_num_input_tokens_seen="non_padding"
    )
    label_kwargs = {"num_labels": len(names), "id2label": id2label, "label2id": label2id}
    model = _load_model(source, args, rt, auto_class, label_kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    if args.is_peft:
        from peft import get_peft_model

        head = modeling.classification_head(model)
        targets = modeling.resolve_target_modules(model, args, (head,))
        model = _prepare_kbit(model, args, rt)
        task_type = "SEQ_CLS" if sequence else "TOKEN_CLS"
        model = get_peft_model(model, modeling.lora_config(args, targets, task_type, None))

    def accuracy(prediction: Any) -> dict[str, float]:
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        predicted = np.argmax(logits, axis=-1)
        labels = prediction.label_ids
        keep = labels != datalib.IGNORE_INDEX
        return {"accuracy": float((predicted[keep] == labels[keep]).mean()) if keep.any() else 0.0}

    collator = (
        DataCollatorWithPadding(tokenizer) if sequence else DataCollatorForTokenClassification(tokenizer)
    )
    trainer = with_token_mean_eval_loss(Trainer, causal=False)(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=accuracy,
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)
    trainable, total, result, eval_metrics, test_metrics = _fit(trainer, rt, eval_ds, test_ds)
    tokens = int(trainer.state.num_input_tokens_seen or progress.tokens)

    def reload() -> Any:
        return auto_class.from_pretrained(source.model, dtype=_export_dtype(rt), **label_kwargs)

    extra = {"labels": names}
    return Trained(
        trainer, result, tokens, len(train_ds), eval_metrics, test_metrics, trainable, total, reload, extra
    )


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {}
    for package in ("torch", "transformers", "peft", "trl", "accelerate", "deepspeed", "bitsandbytes"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions


def run(args: Args, splits: datalib.Splits) -> dict[str, Any]:
    """Train, save, and return the metrics (also written to metrics.json). Raises UsageError/TrainingError."""
    started = time.perf_counter()
    rt = _runtime(args)  # device checks first: a qlora run on a CPU machine fails before the big imports
    rt.resume = resume_point(args)  # says "resuming from checkpoint-N (step N)" when it does
    import torch
    import transformers

    _quiet_libraries()
    source = modeling.locate_model(args.model)
    tokenizer = modeling.load_tokenizer(source)
    resolve_max_seq_length(
        args, Path(source.model) if source.local else None, tokenizer
    )  # --max-seq-length auto
    args.output_dir.mkdir(parents=True, exist_ok=True)
    rt.tracking_uri = tracking.setup_mlflow(args.output_dir)
    transformers.set_seed(args.seed)
    progress = tracking.make_progress_callback(rt.is_main)
    if args.is_preference:
        trained = train_preference(args, splits, rt, source, tokenizer, progress)
    elif args.task in CAUSAL_TASKS:
        trained = train_causal(args, splits, rt, source, tokenizer, progress)
    else:
        trained = train_classifier(args, splits, rt, source, tokenizer, progress)

    trainer = trained.trainer
    trainer.save_model(str(args.output_dir))  # every rank: under ZeRO-3 the weights are gathered collectively
    if not rt.is_main:
        return {}

    tokenizer.save_pretrained(str(args.output_dir))
    saved = export.check_saved(args.output_dir, args.is_peft)
    if "labels" in trained.extra:
        (args.output_dir / "labels.json").write_text(
            json.dumps(trained.extra["labels"]) + "\n", encoding="utf-8"
        )
    runtime_s = float(trained.train_result.metrics.get("train_runtime", 0.0))
    history = tracking.loss_history(trainer.state.log_history)
    peak, peak_source = tracking.peak_memory_mb()
    metrics: dict[str, Any] = {
        "task": args.task,
        "technique": args.technique,
        "model": args.model,
        "model_folder": source.model,
        "precision": rt.precision,
        "requested_precision": args.precision,
        "device": torch.cuda.get_device_name(0) if rt.cuda else "cpu",
        "correctness_run": not rt.cuda,  # a CPU run proves the job works; its speed means nothing for a GPU
        "world_size": rt.world_size,
        "deepspeed_zero_stage": rt.zero_stage,
        "train_loss": float(trained.train_result.training_loss),
        "final_loss": history[-1]["loss"] if history and "loss" in history[-1] else None,
        "train_runtime": runtime_s,
        "train_cpu_seconds": round(float(trained.train_result.metrics.get("train_cpu_seconds", 0.0)), 3),
        "train_steps": int(trainer.state.global_step),
        "train_samples": trained.train_samples,
        "train_tokens": trained.tokens,
        "tokens_per_second": trained.tokens / runtime_s if runtime_s > 0 else None,
        "peak_memory_mb": round(peak, 1),
        "peak_memory_source": peak_source,
        "trainable_parameters": trained.trainable,
        "total_parameters": trained.total,
        "loss_history": [h for h in history if "loss" in h or "eval_loss" in h],
        **tracking.preference_summary(trained.extra, history),
        "mlflow_tracking_uri": rt.tracking_uri,
        **resume_metrics(rt.resume),
        "versions": _versions(),
        **saved,
    }
    for prefix, source_metrics in (("eval_", trained.eval_metrics), ("test_", trained.test_metrics)):
        for key, value in source_metrics.items():
            # TRL adds its own eval_* token metrics to every evaluation's dict: keep each split's own keys.
            if key.startswith(prefix) and key.endswith(("_loss", "_accuracy")):
                metrics[key] = float(value)
            elif key.startswith(f"{prefix}rewards/"):  # dpo/orpo: eval_rewards/margins, .../accuracies
                metrics[key.replace("/", "_")] = float(value)
    tracking.write_metrics(args.output_dir, metrics)
    tracking.log_final_metrics(progress.run_id, metrics)

    want_merged = args.merged_output_dir is not None or args.mlflow_model_dir is not None
    if want_merged:
        del trainer, trained.trainer
        gc.collect()
        if rt.cuda:
            torch.cuda.empty_cache()
        _export_models(args, rt, tokenizer, trained.reload)
    metrics["total_runtime_s"] = round(time.perf_counter() - started, 3)
    return metrics


def _export_models(args: Args, rt: Runtime, tokenizer: Any, reload: Any) -> None:
    if rt.zero_stage == 3:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()  # a plain (unsharded) load for merging
    model = export.merged_model(args, reload, tokenizer) if args.is_peft else None
    if args.merged_output_dir is not None:
        if model is not None:
            export.save_merged(model, tokenizer, args.merged_output_dir)
        else:
            export.copy_model_files(args.output_dir, args.merged_output_dir)
    if args.mlflow_model_dir is not None:
        if model is None:
            model = _auto_class_for(args).from_pretrained(str(args.output_dir), dtype=_export_dtype(rt))
        export.save_mlflow_model(model, tokenizer, args, args.mlflow_model_dir)


def _auto_class_for(args: Args) -> Any:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    return {
        "chat-completion": AutoModelForCausalLM,
        "text-completion": AutoModelForCausalLM,
        "text-classification": AutoModelForSequenceClassification,
        "token-classification": AutoModelForTokenClassification,
    }[args.task]
