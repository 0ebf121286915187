"""One secret scanner for every string that leaves the machine: spec fields (keys and values), --set values, URLs.

`find_secret(text)` names the kind of secret a string carries (or None), looking through percent- and
HTML-encoding and case; `redact(text)` is what an error message may show of it. Nothing here returns the value."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["credential_files", "find_secret", "iter_secrets", "redact", "uploaded_files"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a SAS signature (sig=)", re.compile(r"(?:^|[?&;\s])sig=[^&\s]+", re.IGNORECASE)),
    (
        "a storage connection string / account key",
        re.compile(r"(?:AccountKey|SharedAccessKey|SharedAccessSignature)\s*=", re.IGNORECASE),
    ),
    ("a user name and password in a URL", re.compile(r"[a-z][a-z0-9+.\-]*://[^/\s:@?#]*:[^/\s@?#]+@", re.I)),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a bearer token", re.compile(r"\bBearer\s+[A-Za-z0-9._\-]{20,}", re.IGNORECASE)),
)


def _decodings(text: str) -> Iterator[str]:
    """The text, and what it reads as after HTML- and percent-decoding (repeatedly, for double encoding)."""
    seen: set[str] = set()
    current = text
    for _ in range(4):
        if current in seen:
            return
        seen.add(current)
        yield current
        current = unquote(html.unescape(current))


def find_secret(text: str) -> str | None:
    """What kind of secret `text` carries, in any of its encodings, or None."""
    if not isinstance(text, str) or len(text) < 6:
        return None
    for variant in _decodings(text):
        for kind, pattern in _PATTERNS:
            if pattern.search(variant):
                return kind
    return None


def redact(text: str) -> str:
    """What may be shown of a string that carries a secret: its start, never the secret."""
    head = re.split(r"[?#@:=_\-]", text, maxsplit=1)[0]
    return (head[:24] + "…[redacted]") if head != text and find_secret(head) is None else "[redacted]"


def iter_secrets(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(location, kind) for every string in a nested mapping/list — keys and values — that carries a secret."""
    if isinstance(value, dict):
        for key, item in value.items():
            kind = find_secret(str(key))
            if kind:  # the key itself is the secret: its location names it redacted
                yield (*path, redact(str(key))), kind
                continue
            yield from iter_secrets(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_secrets(item, (*path, index))
    elif isinstance(value, str):
        kind = find_secret(value)
        if kind:
            yield path, kind


#: Files that hold credentials by their name: never part of an uploaded folder.
_CREDENTIAL_NAMES = re.compile(
    r"^(\.env(\..*)?|\.netrc|_netrc|\.git-credentials|\.pypirc|\.npmrc|credentials(\.json)?|"
    r"id_(rsa|dsa|ecdsa|ed25519)(_sk)?|.*\.(pem|key|pfx|p12|jks|keystore|ppk))$",
    re.IGNORECASE,
)


def _ignore_spec(folder: Path) -> Any:
    """The folder's .amlignore (else .gitignore) patterns, as Azure ML's upload reads them; None if neither."""
    for name in (".amlignore", ".gitignore"):
        path = folder / name
        if path.is_file():
            import pathspec

            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            return pathspec.PathSpec.from_lines("gitwildmatch", lines)
    return None


def uploaded_files(folder: Path, always_ignored: Callable[[Path], bool] = lambda _: False) -> list[Path]:
    """The files of `folder` an upload takes: .amlignore/.gitignore honoured, `always_ignored` skipped."""
    ignore = _ignore_spec(folder)
    found: list[Path] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if always_ignored(relative):
            continue
        if ignore is not None and ignore.match_file(relative.as_posix()):
            continue
        if path.is_file():
            found.append(path)
    return found


def credential_files(files: list[Path], folder: Path) -> list[str]:
    """The files among `files` that hold credentials (by name, or a private key inside): relative names."""
    found: list[str] = []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        if _CREDENTIAL_NAMES.fullmatch(path.name):
            found.append(relative)
            continue
        try:
            with path.open("rb") as handle:
                head = handle.read(4096).decode("utf-8", errors="replace")
        except OSError:
            continue
        if "PRIVATE KEY-----" in head or find_secret(head) in ("a storage connection string / account key",):
            found.append(relative)
    return found
