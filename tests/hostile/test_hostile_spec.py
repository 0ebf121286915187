"""The hostile-spec corpus: every case is one bad spec; `validate` exits 2 with the phrase a user needs, the file
and the line, and never an internal error or a traceback (issue 15)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import BASE_SPEC, Result, assert_refused, line_of

# A case: (id, spec bytes, the text on the line the error must name (None: no line), the phrase, a value the
# output must never contain (a secret) or None).
Case = tuple[str, bytes, str | None, str, str | None]

FAKE_SECRETS: dict[str, str] = {
    "sas-upper": "https://acct.blob.core.windows.net/c/f.jsonl?sv=2021-10-04&SIG=c2VjcmV0U0FTc2ln",
    "sas-percent": "https://acct.blob.core.windows.net/c/f.jsonl?sv=2021-10-04&%73ig=c2VjcmV0U0FTc2ln",
    "sas-html": "https://acct.blob.core.windows.net/c/f.jsonl?sv=2021-10-04&amp;sig=c2VjcmV0U0FTc2ln",
    "sas-double-encoded": "https://acct.blob.core.windows.net/c/f.jsonl%3Fsv%3D1%26sig%3Dc2VjcmV0U0FTc2ln",
    "connection-string": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0QWNjb3VudEtleQ==",
    "url-userinfo": "https://alice:hunter2secret@example.com/data/train.jsonl",
    "huggingface": "hf_" + "SecretHuggingFaceToken0123456789ab",
    "github": "ghp_" + "SecretGitHubToken0123456789abcdefghij",
    "github-pat": "github_pat_" + "11SECRETGITHUBPAT0123456789_abcdefgh",
    "openai": "sk-proj-" + "SecretOpenAIKey0123456789abcdefghijklmn",
    "aws": "AKIA" + "SECRETAWSKEY0123",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtand0In0.c2VjcmV0LWp3dC1zaWduYXR1cmU",
    "private-key": "-----BEGIN RSA PRIVATE KEY----- MIIsecretkeymaterial",
    "bearer": "Bearer SecretBearerToken0123456789abcdef",
}


def _replace(old: str, new: str) -> bytes:
    assert old in BASE_SPEC, old
    return BASE_SPEC.replace(old, new, 1).encode()


def _append(line: str) -> bytes:
    return (BASE_SPEC + line + "\n").encode()


def _secret_cases() -> list[Case]:
    cases: list[Case] = []
    for name, secret in FAKE_SECRETS.items():
        quoted = json.dumps(secret)
        where = {
            "description": (
                "description: a base spec the hostile tests mutate one line at a time",
                f"description: {quoted}",
                "description:",
            ),
            "tag-value": ("tags: {team: support}", f"tags: {{team: {quoted}}}", "tags:"),
            "tag-key": ("tags: {team: support}", f"tags: {{{quoted}: x}}", "tags:"),
            "register-description": (
                "description: the registered model",
                f"description: {quoted}",
                "register:",
            ),
            "data-train": ("train: data/chat-train.jsonl", f"train: {quoted}", "train:"),
        }
        for field, (old, new, needle) in where.items():
            cases.append(
                (
                    f"secret-{name}-in-{field}",
                    _replace(old, new),
                    needle,
                    "must not carry credentials",
                    secret,
                )
            )
    return cases


_NUMBERS = [
    ("epochs: 1", "epochs"),
    ("max_steps: 10", "max_steps"),
    ("learning_rate: 2.0e-4", "learning_rate"),
    ("per_device_batch_size: 4", "per_device_batch_size"),
    ("gradient_accumulation_steps: 4", "gradient_accumulation_steps"),
    ("max_seq_length: 512", "max_seq_length"),
    ("warmup_ratio: 0.0", "warmup_ratio"),
    ("logging_steps: 5", "logging_steps"),
    ("r: 16", "r"),
    ("alpha: 32", "alpha"),
    ("dropout: 0.05", "dropout"),
    ("nodes: 1", "nodes"),
    ("gpus_per_node: 1", "gpus_per_node"),
    ("max_run_minutes: 60", "max_run_minutes"),
]


def _bool_cases() -> list[Case]:
    cases: list[Case] = []
    for old, key in _NUMBERS:
        for word in ("true", "false"):
            new = old.split(":")[0] + f": {word}"
            cases.append((f"bool-for-number-{key}-{word}", _replace(old, new), new, f"got {word}", None))
    return cases


_NON_STRING_KEYS = ["on", "yes", "no", "off", "1", "~", "null", "true", "3.5", "2020-01-01"]


def _key_cases() -> list[Case]:
    cases: list[Case] = []
    for key in _NON_STRING_KEYS:
        cases.append((f"top-level-key-{key}", _append(f"{key}: 1"), f"{key}: 1", "is not a string", None))
        cases.append(
            (
                f"nested-key-{key}",
                _replace("tags: {team: support}", f"tags: {{team: support, {key}: x}}"),
                "tags:",
                "is not a string",
                None,
            )
        )
    return cases


def _bomb() -> bytes:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n" + BASE_SPEC).encode()


_IDS = [
    (
        "subscription-path",
        '{subscription_id: "../../x?y#", resource_group: rg, name: ws1}',
        "subscription id GUID",
    ),
    ("subscription-short", "{subscription_id: sub, resource_group: rg, name: ws1}", "subscription id GUID"),
    (
        "subscription-one-short",
        "{subscription_id: 12345678-1234-1234-1234-12345678901, resource_group: rg, name: ws1}",
        "subscription id GUID",
    ),
    ("subscription-not-hex", "{subscription_id: " + "g" * 36 + ", resource_group: rg, name: ws1}", "GUID"),
    ("subscription-empty", '{subscription_id: "", resource_group: rg, name: ws1}', "GUID"),
    (
        "resource-group-slash",
        '{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: "a/b", name: ws1}',
        "resource group name",
    ),
    (
        "resource-group-long",
        "{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: "
        + "r" * 91
        + ", name: ws1}",
        "resource group name",
    ),
    (
        "resource-group-dot",
        "{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: ends., name: ws1}",
        "resource group name",
    ),
    (
        "resource-group-space",
        '{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: "has space", name: ws1}',
        "resource group name",
    ),
    (
        "workspace-short",
        "{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, name: w}",
        "workspace name",
    ),
    (
        "workspace-dash",
        "{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, name: -bad}",
        "workspace name",
    ),
    (
        "workspace-long",
        "{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, name: " + "w" * 40 + "}",
        "workspace name",
    ),
    (
        "workspace-slash",
        '{subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, name: "x/y"}',
        "workspace name",
    ),
]


def _other_cases() -> list[Case]:
    cases: list[Case] = [
        ("alias-bomb", _bomb(), "a4:", "expands to more than", None),
        ("recursive-anchor", _append("loop: &l [*l]"), "loop:", "recursive alias", None),
        ("recursive-mapping", _append("loop: &l {self: *l}"), "loop:", "recursive alias", None),
        ("deep-flow-nesting", _append("deep: " + "[" * 40 + "]" * 40), "deep:", "nested more than", None),
        (
            "deep-block-nesting",
            _append("".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "leaf: 1"),
            "k33:",
            "nested more than",
            None,
        ),
        ("huge-integer", _replace("epochs: 1", "epochs: " + "9" * 5000), "epochs:", "digits", None),
        ("long-integer", _replace("max_steps: 10", "max_steps: " + "1" * 31), "max_steps:", "digits", None),
        ("gzip", gzip.compress(BASE_SPEC.encode()), None, "gzip", None),
        ("nul-byte", _append("x: a\x00b"), "x: a", "control character", None),
        ("bell", _append("x: a\x07b"), "x: a", "control character", None),
        (
            "invalid-utf8",
            _append("x: \xff\xfe").replace("\xff\xfe".encode(), b"\xff\xfe\xfd"),
            "x: ",
            "UTF-8",
            None,
        ),
        ("utf16-without-bom", BASE_SPEC.encode("utf-16-le"), "name:", "control character", None),
        ("oversized", _append("x: '" + "a" * (1024 * 1024) + "'"), None, "bytes", None),
        ("empty", b"", None, "empty", None),
        ("top-level-list", b"- a\n- b\n", "- a", "must be a mapping", None),
        ("top-level-scalar", b"hello\n", "hello", "must be a mapping", None),
        ("tab-indentation", _replace("  epochs: 1", "\tepochs: 1"), "epochs", "YAML syntax error", None),
        ("duplicate-key", _append("name: again"), "name: again", "duplicate key", None),
        ("unclosed-quote", _append('x: "open'), None, "YAML syntax error", None),
        (
            "gpus-per-node-zero",
            _replace("gpus_per_node: 1", "gpus_per_node: 0"),
            "gpus_per_node",
            "must be ≥ 1",
            None,
        ),
        (
            "gpus-per-node-negative",
            _replace("gpus_per_node: 1", "gpus_per_node: -1"),
            "gpus_per_node",
            "≥ 1",
            None,
        ),
        ("nodes-zero", _replace("nodes: 1", "nodes: 0"), "nodes:", "must be ≥ 1", None),
        (
            "impossible-fit",
            _replace("model: phi-3-mini-4k-instruct", "model: phi-3-medium-4k-instruct")
            .replace(b"technique: lora", b"technique: full")
            .replace(b"  lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: auto}\n", b""),
            "instance_type:",
            "cannot fit",
            None,
        ),
    ]
    cases += [
        (f"id-{name}", _append(f"workspace: {body}"), "workspace:", phrase, None)
        for name, body, phrase in _IDS
    ]
    return cases


CASES: list[Case] = [*_secret_cases(), *_bool_cases(), *_key_cases(), *_other_cases()]


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 100
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("raw", "needle", "phrase", "secret"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_hostile_spec_is_refused_with_its_place(
    folder: Path,
    cli: Callable[..., Result],
    raw: bytes,
    needle: str | None,
    phrase: str,
    secret: str | None,
) -> None:
    spec = folder / "spec.yaml"
    spec.write_bytes(raw)
    line = None
    if needle is not None:
        text = raw.decode("utf-8", errors="replace").replace("\x00", "")
        line = line_of(text, needle)
    result = cli("validate", "--no-data", str(spec))
    assert_refused(result, str(spec), line, phrase)
    if secret is not None:
        assert secret not in result.text
