"""Cheap task metrics in plain Python: accuracy/F1, SQuAD exact match/F1, ROUGE-1/ROUGE-L, corpus BLEU-4."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def accuracy(predicted: Sequence[object], expected: Sequence[object]) -> float:
    if not expected:
        return 0.0
    return sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)


def f1_macro(predicted: Sequence[object], expected: Sequence[object]) -> float:
    """Unweighted mean of the per-class F1 over the classes that occur in either list."""
    classes = set(predicted) | set(expected)
    if not classes:
        return 0.0
    scores = []
    for label in classes:
        tp = sum(p == label and e == label for p, e in zip(predicted, expected, strict=True))
        fp = sum(p == label and e != label for p, e in zip(predicted, expected, strict=True))
        fn = sum(p != label and e == label for p, e in zip(predicted, expected, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def f1_tags(predicted: Sequence[str], expected: Sequence[str], outside: str = "O") -> float:
    """Token-level micro F1 over the tags that are not `outside` (a cheap stand-in for entity F1)."""
    tp = sum(p == e and e != outside for p, e in zip(predicted, expected, strict=True))
    predicted_positive = sum(p != outside for p in predicted)
    actual_positive = sum(e != outside for e in expected)
    if not predicted_positive or not actual_positive:
        return 1.0 if predicted_positive == actual_positive else 0.0
    precision, recall = tp / predicted_positive, tp / actual_positive
    return 2 * precision * recall / (precision + recall) if tp else 0.0


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(ref) for ref in references))


def _token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref:
        return float(pred == ref)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_f1(prediction: str, references: Sequence[str]) -> float:
    return max((_token_f1(prediction, ref) for ref in references), default=0.0)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _f(overlap: float, predicted: int, reference: int) -> float:
    if not overlap or not predicted or not reference:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def rouge1(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    return _f(sum((Counter(pred) & Counter(ref)).values()), len(pred), len(ref))


def rouge_l(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    return _f(_lcs(pred, ref), len(pred), len(ref))


def bleu(predictions: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Corpus BLEU-4 (uniform weights, brevity penalty, add-one smoothing for n > 1), in 0..1."""
    matches, totals = [0] * max_n, [0] * max_n
    predicted_length = reference_length = 0
    for prediction, reference in zip(predictions, references, strict=True):
        pred, ref = _tokens(prediction), _tokens(reference)
        predicted_length += len(pred)
        reference_length += len(ref)
        for n in range(1, max_n + 1):
            pred_grams = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
            ref_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum((pred_grams & ref_grams).values())
            totals[n - 1] += max(len(pred) - n + 1, 0)
    if predicted_length == 0 or matches[0] == 0:
        return 0.0
    log_precision = 0.0
    for n in range(max_n):
        numerator, denominator = (matches[n], totals[n]) if n == 0 else (matches[n] + 1, totals[n] + 1)
        log_precision += math.log(numerator / denominator) / max_n
    brevity = (
        1.0 if predicted_length > reference_length else math.exp(1 - reference_length / predicted_length)
    )
    return brevity * math.exp(log_precision)
