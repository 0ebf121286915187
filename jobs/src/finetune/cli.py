"""`main()`: parse flags, resolve secrets, train; exit 0 ok, 2 bad flags/data/model, 1 training failure."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from azft_contract.progress import DONE_PREFIX, ERROR_PREFIX

from finetune.args import is_main_process, parse_args
from finetune.errors import TrainingError, UsageError
from finetune.tracking import emit

log = logging.getLogger("finetune")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Azure ML images and CI have no TTY: keep Hugging Face progress bars and telemetry off.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # A job on the user's compute reports to the user's workspace only (and network-isolated workspaces
    # cannot reach MLflow's telemetry endpoint anyway).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(code: int, message: str) -> int:
    if is_main_process():
        emit(ERROR_PREFIX, {"exit_code": code, "error": message})
    print(f"finetune: error: {message}", file=sys.stderr)
    return code


def _shutdown_distributed(*, succeeded: bool) -> None:
    """End torch.distributed's process group before the interpreter exits. Left to the interpreter's teardown, a
    gloo group's worker threads can outlive it: a rank then dies with "terminate called without an active
    exception" (SIGABRT) after its work is done, and the launcher reports the whole run failed. Only when torch
    was imported (bad input exits before it is)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            if succeeded:  # every rank got here: wait for all (a failed rank's peers may be mid-collective)
                dist.barrier()
            dist.destroy_process_group()
    except Exception as error:  # a failed peer: the exit code already says what happened
        print(f"finetune: note: could not end the process group cleanly ({error})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    code = 1
    try:
        code = _main(argv)
        return code
    finally:
        _shutdown_distributed(succeeded=code == 0)


def _main(argv: list[str] | None) -> int:
    _setup_logging()
    try:
        args = parse_args(argv)
        if args.secrets:
            from finetune.keyvault import resolve_secrets

            resolve_secrets(args.secrets)
        from finetune.data import load_splits

        splits = load_splits(args)  # plain Python: bad data exits 2 before torch is even imported
        from finetune.train import run

        metrics = run(args, splits)
    except UsageError as exc:
        return _fail(UsageError.exit_code, str(exc))
    except TrainingError as exc:
        return _fail(TrainingError.exit_code, str(exc))
    except KeyboardInterrupt:
        return _fail(1, "interrupted")
    except Exception as exc:
        traceback.print_exc()
        return _fail(1, f"{type(exc).__name__}: {exc}")
    if metrics:
        done = {k: v for k, v in metrics.items() if k not in ("loss_history", "versions")}
        done["output_dir"] = str(args.output_dir)
        emit(DONE_PREFIX, done)
    return 0
