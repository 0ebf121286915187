"""Where Hugging Face keeps downloaded models on this machine (read by the planner and the local backend)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cached_config", "hf_cached", "huggingface_cache_dir"]


def huggingface_cache_dir() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (as huggingface_hub decides)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def cached_config(hf_id: str) -> Path | None:
    """config.json of a model in the cache (no download), newest snapshot first; None when it is not there."""
    snapshots = huggingface_cache_dir() / ("models--" + hf_id.replace("/", "--")) / "snapshots"
    try:
        if not snapshots.is_dir():
            return None
        candidates = sorted(
            (p / "config.json" for p in snapshots.iterdir() if (p / "config.json").is_file()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        return None
    return candidates[0] if candidates else None


def hf_cached(hf_id: str) -> bool:
    """Whether a Hugging Face model is in this machine's cache (a snapshot with a config.json)."""
    return cached_config(hf_id) is not None
