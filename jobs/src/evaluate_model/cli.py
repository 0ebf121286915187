"""`main()`: loss, perplexity and cheap task metrics of a model on one data file -> metrics.json.

The data file is read by azft_contract, as training reads it (the same checks, the same examples), and
examples become model inputs exactly as in training (finetune.data: chat template and prompt masking, the
label ids saved with the model), so eval_loss here is comparable with the training run's eval_loss.
Exit 0 ok, 2 bad input, 1 failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft_contract import OBJECTIVES, PREFERENCE_OBJECTIVES, TASKS, ContractError, data_kind, parse_columns

from evaluate_model import metrics as m

log = logging.getLogger("evaluate_model")

IGNORE_INDEX = -100


class UsageError(Exception):
    """Bad flags, data or model: exit 2."""


@dataclass
class EvalArgs:
    """The subset of the entry point's Args that finetune.data reads."""

    task: str
    max_seq_length: int
    mask_prompt: bool = True
    columns: dict[str, str] = field(default_factory=dict)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluate_model", description=__doc__)
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add(
        "--objective",
        default="sft",
        choices=OBJECTIVES,
        help="dpo/orpo: the data are preference pairs; scores how often the model prefers the chosen answer",
    )
    add("--model", required=True, type=Path, help="a full model folder (the merge step's output)")
    add("--data-file", required=True, type=Path)
    add("--split", default="validation", help="name of the data in metrics.json (test, validation, train)")
    add("--column", action="append", default=[], metavar="KEY=NAME")
    add("--max-seq-length", type=int, default=1024)
    add("--batch-size", type=int, default=4)
    add("--max-examples", type=int, default=0, help="evaluate the first N examples; 0 = all")
    add(
        "--max-generate", type=int, default=32, help="examples that generation metrics decode (QA, summaries)"
    )
    add("--mask-prompt", default="true", choices=("true", "false"))
    add("--metrics-dir", required=True, type=Path)
    return parser


def _columns(items: list[str], task: str) -> dict[str, str]:
    try:
        return parse_columns(items, task)
    except ContractError as error:
        raise UsageError(str(error)) from error


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batches(rows: list[dict[str, Any]], size: int) -> Any:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _pad(rows: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = None
    if isinstance(rows[0]["labels"], list):
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        mask[i, :n] = 1
        if labels is not None:
            labels[i, :n] = torch.tensor(row["labels"])
    if labels is None:
        labels = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _causal_rows(records: list[dict[str, Any]], tokenizer: Any, args: EvalArgs) -> list[dict[str, Any]]:
    from finetune import data

    limit = args.max_seq_length
    if args.task == "chat-completion":
        encoded = data.chat_rows(records, tokenizer, mask_prompt=args.mask_prompt, name="data")
    else:
        encoded = []
        for record in records:
            prompt, target = _prompt_target(record, args)
            prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
            target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
            if tokenizer.eos_token_id is not None:
                target_ids = [*target_ids, tokenizer.eos_token_id]
            ids = [*prompt_ids, *target_ids]
            masked = args.mask_prompt and bool(prompt)
            labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids if masked else list(ids)
            encoded.append({"input_ids": ids, "labels": labels})
    rows = []
    for row in encoded:
        row = {"input_ids": row["input_ids"][:limit], "labels": row["labels"][:limit]}
        if any(label != IGNORE_INDEX for label in row["labels"][1:]):
            rows.append(row)
    return rows


def _pair_rows(records: list[dict[str, Any]], tokenizer: Any, limit: int) -> list[list[dict[str, Any]]]:
    """[chosen row, rejected row] per preference pair: prompt + answer with the loss on the answer only, as
    the preference trainers score them (message lists through the chat template, text with EOS)."""
    from finetune import data

    pairs = []
    for record in records:
        sides = []
        for side in ("chosen", "rejected"):
            prompt, answer = record["prompt"], record[side]
            if isinstance(answer, list):
                row = data.tokenize_chat(tokenizer, [*prompt, *answer], mask_prompt=True)
            else:
                prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
                answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
                if tokenizer.eos_token_id is not None:
                    answer_ids = [*answer_ids, tokenizer.eos_token_id]
                row = {
                    "input_ids": [*prompt_ids, *answer_ids],
                    "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
                }
            sides.append({"input_ids": row["input_ids"][:limit], "labels": row["labels"][:limit]})
        if all(any(label != IGNORE_INDEX for label in row["labels"][1:]) for row in sides):
            pairs.append(sides)
    return pairs


def _answer_logprobs(
    model: Any, rows: list[dict[str, Any]], pad_id: int, batch_size: int
) -> list[tuple[float, int]]:
    """(summed log-probability of the answer tokens, their number) of each row."""
    import torch

    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    with torch.no_grad():
        for batch in _batches(rows, batch_size):
            tensors = {k: v.to(device) for k, v in _pad(batch, pad_id).items()}
            logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).logits
            logprobs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
            labels = tensors["labels"][:, 1:]
            keep = labels != IGNORE_INDEX
            picked = logprobs.gather(2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
            out += [(float(total), int(n)) for total, n in zip(picked.sum(1), keep.sum(1), strict=True)]
    return out


def _preference(
    model: Any, records: list[dict[str, Any]], tokenizer: Any, args: argparse.Namespace, pad_id: int
) -> dict[str, Any]:
    """dpo/orpo data: the loss and perplexity of the chosen answers, and how often (and by how much, in log
    probability) the model prefers the chosen answer to the rejected one."""
    pairs = _pair_rows(records, tokenizer, args.max_seq_length)
    if not pairs:
        raise UsageError(f"{args.data_file}: no pair has answer tokens to score")
    chosen = _answer_logprobs(model, [pair[0] for pair in pairs], pad_id, args.batch_size)
    rejected = _answer_logprobs(model, [pair[1] for pair in pairs], pad_id, args.batch_size)
    tokens = sum(n for _, n in chosen)
    margins = [c - r for (c, _), (r, _) in zip(chosen, rejected, strict=True)]
    loss = -sum(total for total, _ in chosen) / tokens
    return {
        "eval_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "eval_tokens": tokens,
        "examples": len(pairs),
        "preference_accuracy": sum(margin > 0 for margin in margins) / len(margins),
        "logprob_margin": sum(margins) / len(margins),
    }


def _prompt_target(example: dict[str, Any], args: EvalArgs) -> tuple[str, str]:
    """(prompt, target) of a text-to-text example as the contract reads it; an empty prompt means the
    whole text is the target."""
    if args.task == "text-completion":
        if "prompt" in example:
            return example["prompt"], example["completion"]
        return "", example["text"]
    if args.task == "question-answering":
        first = example["answers"][0]["text"] if example["answers"] else ""
        return f"Context: {example['context']}\nQuestion: {example['question']}\nAnswer:", f" {first}"
    if args.task == "summarization":
        return f"Summarize:\n{example['source']}\nSummary:", f" {example['target']}"
    source = example.get("source_lang") or "source"
    target = example.get("target_lang") or "target"
    return f"Translate {source} to {target}:\n{example['source']}\n", example["target"]


def _loss(
    model: Any, rows: list[dict[str, Any]], pad_id: int, batch_size: int, causal: bool
) -> tuple[float, int, list[Any]]:
    """(summed loss, counted targets, per-batch argmax predictions) over all rows.

    eval_loss = summed / counted: the mean over every target token (one per example for sequence labels),
    whatever the batch size. The training run's eval_loss is the same mean (finetune.train
    with_token_mean_eval_loss), so a register.min_eval threshold reads the same number from either.
    """
    import torch

    device = next(model.parameters()).device
    total, count, predictions = 0.0, 0, []
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum")
    with torch.no_grad():
        for batch in _batches(rows, batch_size):
            tensors = {k: v.to(device) for k, v in _pad(batch, pad_id).items()}
            logits = model(
                input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]
            ).logits.float()
            labels = tensors["labels"]
            if causal:
                logits, labels = logits[:, :-1, :], labels[:, 1:]
            if labels.dim() == 1:
                total += float(loss_fn(logits, labels))
                count += int(labels.numel())
            else:
                total += float(loss_fn(logits.reshape(-1, logits.size(-1)), labels.reshape(-1)))
                count += int((labels != IGNORE_INDEX).sum())
            predictions.append((logits.argmax(-1).cpu(), labels.cpu()))
    return total, count, predictions


def _generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    device = next(model.parameters()).device
    outputs = []
    with torch.no_grad():
        for prompt in prompts:
            encoded = tokenizer(prompt, return_tensors="pt").to(device)
            generated = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            new = (
                generated[0]
                if model.config.is_encoder_decoder
                else generated[0, encoded["input_ids"].shape[1] :]
            )
            outputs.append(tokenizer.decode(new, skip_special_tokens=True).strip().split("\n")[0])
    return outputs


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers
    from finetune import data
    from finetune.errors import UsageError as EntryUsageError

    preference = args.objective in PREFERENCE_OBJECTIVES
    if preference and args.task not in ("chat-completion", "text-completion"):
        raise UsageError(
            f"--objective {args.objective} evaluates chat-completion or text-completion, not {args.task}"
        )
    kind = data_kind(args.task, args.objective)  # the task's examples, or preference pairs
    eval_args = EvalArgs(
        task=args.task, max_seq_length=args.max_seq_length, mask_prompt=args.mask_prompt == "true",
        columns=_columns(args.column, kind),
    )  # fmt: skip
    if not (args.model / "config.json").is_file():
        raise UsageError(f"--model {args.model}: no config.json (expected a full model folder)")
    try:
        records: list[dict[str, Any]] = data.read_split(args.data_file, kind, eval_args.columns, "data")
    except EntryUsageError as error:
        raise UsageError(str(error)) from error
    if args.max_examples > 0:
        records = records[: args.max_examples]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(args.model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    config = transformers.AutoConfig.from_pretrained(str(args.model))
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    result: dict[str, Any] = {"task": args.task, "split": args.split, "model": str(args.model)}
    if preference:
        result["objective"] = args.objective
    started = time.perf_counter()
    try:
        if args.task in ("text-classification", "token-classification"):
            result.update(_classification(args, eval_args, records, tokenizer, pad_id, dtype))
        else:
            auto = (
                transformers.AutoModelForSeq2SeqLM
                if config.is_encoder_decoder
                else transformers.AutoModelForCausalLM
            )
            model = auto.from_pretrained(str(args.model), dtype=dtype).to(_device()).eval()
            if args.task == "chat-completion" or (preference and data.is_conversational_pairs(records)):
                data.ensure_chat_template(tokenizer)
            if preference:
                result.update(_preference(model, records, tokenizer, args, pad_id))
                result["eval_runtime"] = round(time.perf_counter() - started, 3)
                return result
            rows = _causal_rows(records, tokenizer, eval_args)
            if not rows:
                raise UsageError(f"{args.data_file}: no example has target tokens to score")
            total, count, _ = _loss(
                model, rows, pad_id, args.batch_size, causal=not config.is_encoder_decoder
            )
            result["eval_loss"] = total / count
            result["perplexity"] = math.exp(min(result["eval_loss"], 50.0))
            result["eval_tokens"] = count
            result["examples"] = len(rows)
            if args.task in ("question-answering", "summarization", "translation") and args.max_generate > 0:
                result.update(_generation_metrics(model, tokenizer, records[: args.max_generate], eval_args))
    except EntryUsageError as error:
        raise UsageError(str(error)) from error
    result["eval_runtime"] = round(time.perf_counter() - started, 3)
    return result


def _classification(
    args: argparse.Namespace,
    eval_args: EvalArgs,
    records: list[dict[str, Any]],
    tokenizer: Any,
    pad_id: int,
    dtype: Any,
) -> dict[str, Any]:
    import transformers
    from finetune import data

    sequence = args.task == "text-classification"
    auto = (
        transformers.AutoModelForSequenceClassification
        if sequence
        else transformers.AutoModelForTokenClassification
    )
    model = auto.from_pretrained(str(args.model), dtype=dtype).to(_device()).eval()
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    build = data.classification_dataset if sequence else data.token_classification_dataset
    rows = [dict(row) for row in build(records, tokenizer, eval_args, label2id, args.split)]
    if not rows:
        raise UsageError(f"{args.data_file}: no example has a label the model was trained on")
    total, count, batches = _loss(model, rows, pad_id, args.batch_size, causal=False)
    predicted: list[int] = []
    expected: list[int] = []
    for prediction, labels in batches:
        keep = labels != IGNORE_INDEX
        predicted += prediction[keep].tolist()
        expected += labels[keep].tolist()
    out: dict[str, Any] = {
        "eval_loss": total / max(count, 1),
        "accuracy": m.accuracy(predicted, expected),
        "examples": len(rows),
    }
    if sequence:
        out["f1_macro"] = m.f1_macro(predicted, expected)
    else:
        id2label = {v: k for k, v in label2id.items()}
        out["f1"] = m.f1_tags([id2label[p] for p in predicted], [id2label[e] for e in expected])
    return out


def _generation_metrics(
    model: Any, tokenizer: Any, records: list[dict[str, Any]], args: EvalArgs
) -> dict[str, Any]:
    pairs = [_prompt_target(record, args) for record in records]
    predictions = _generate(model, tokenizer, [p for p, _ in pairs], max_new_tokens=64)
    targets = [t.strip() for _, t in pairs]
    out: dict[str, Any] = {"generated_examples": len(predictions)}
    if args.task == "question-answering":
        references = [[answer["text"] for answer in record["answers"]] for record in records]
        out["exact_match"] = sum(
            m.exact_match(p, r) for p, r in zip(predictions, references, strict=True)
        ) / len(predictions)
        out["f1"] = sum(m.qa_f1(p, r) for p, r in zip(predictions, references, strict=True)) / len(
            predictions
        )
    elif args.task == "summarization":
        out["rouge1"] = sum(m.rouge1(p, t) for p, t in zip(predictions, targets, strict=True)) / len(
            predictions
        )
        out["rougeL"] = sum(m.rouge_l(p, t) for p, t in zip(predictions, targets, strict=True)) / len(
            predictions
        )
    else:
        out["bleu"] = m.bleu(predictions, targets)
    return out


def _log_to_mlflow(result: dict[str, Any]) -> None:
    """On Azure ML (an MLflow tracking URI is set) the metrics also show on the step's run."""
    import os

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    try:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in result.items() if isinstance(v, int | float)})
    except Exception as error:  # metrics.json is the contract; the run's charts are a convenience
        log.warning("could not log metrics to MLflow: %s", error)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    try:
        result = evaluate(args)
    except UsageError as error:
        print(f"evaluate_model: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        traceback.print_exc()
        print(f"evaluate_model: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    args.metrics_dir.mkdir(parents=True, exist_ok=True)
    path = args.metrics_dir / "metrics.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _log_to_mlflow(result)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items() if k != "model"}
    print(f"evaluate_model: {json.dumps(shown)}", file=sys.stderr)
    return 0
