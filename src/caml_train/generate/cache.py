"""On-disk response cache: one JSON file per request, keyed by a hash of the full request.

Why one file per key: each finished request is persisted by an atomic rename the moment it returns,
so a crash or `kill -9` loses at most the requests in flight, concurrent writers never interleave,
and merging the caches of several machines (shards) is a plain `rsync`/`cp -r`. The key hashes the
model string, the messages and the sampling parameters; it deliberately leaves out the endpoint
(api_base) and credentials, so the same request served by another replica is still a cache hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 over a canonical JSON of (model, messages, params)."""
    payload = json.dumps(
        {"model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CacheEntry(BaseModel):
    """A finished request and what it cost."""

    key: str
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    cost_usd: float = Field(0.0, allow_inf_nan=False)  # a NaN cost would poison every total
    cost_known: bool = False
    attempts: int = 1
    response_model: str | None = None
    mode: str = "online"  # how it was fetched: online | batch | vllm (the manifest counts them)
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


class ResponseCache:
    """A folder of `<key[:2]>/<key>.json` files written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.corrupt: list[str] = []  # keys whose file could not be read (treated as missing)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            entry = CacheEntry.model_validate_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValidationError):
            # Not UTF-8, not JSON, not an entry: atomic writes make this unlikely (a disk
            # fault, a hand edit, a foreign file); keep it aside (never delete data), refetch.
            self._set_aside(key, path)
            return None
        if entry.key != key:
            self._set_aside(key, path)
            return None
        return entry

    def _set_aside(self, key: str, path: Path) -> None:
        """Move a bad entry to `<key>.corrupt` (listed in `self.corrupt`) so it is regenerated."""
        self.corrupt.append(key)
        target, n = path.with_suffix(".corrupt"), 1
        while target.exists():  # an earlier bad copy of this entry stays too
            target, n = path.with_suffix(f".corrupt.{n}"), n + 1
        path.replace(target)

    def put(self, entry: CacheEntry) -> Path:
        path = self.path(entry.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{entry.key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(entry.model_dump_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def keys(self) -> set[str]:
        """Every key with a finished entry on disk (temporary files of a killed run are ignored)."""
        return {p.stem for p in self.root.glob("*/*.json")}

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()
