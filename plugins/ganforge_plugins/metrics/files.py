"""Weights files and the cache directory, shared by the feature extractors and the evaluation plugins."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ganforge import ConfigError


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, *, what: str) -> str:
    """The file's SHA-256, or a :class:`ConfigError` naming the expected and the actual hash."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise ConfigError(
            f"{what}: weights file {str(path)!r} has SHA-256 {actual}, expected {expected.lower()}; "
            "it is not the file this protocol names (another or a corrupted file). Use the right file, or "
            "set sha256 to the actual hash if you mean to use these weights (the numbers will not be comparable)."
        )
    return actual


def cache_root(configured: str = "") -> Path:
    """``configured``, else ``$GANFORGE_CACHE``, else ``~/.cache/ganforge``."""
    return Path(configured or os.environ.get("GANFORGE_CACHE", "") or Path.home() / ".cache" / "ganforge").expanduser()
