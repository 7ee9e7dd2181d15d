"""Which ``vertexai.yml`` file a key comes from, and how keys and values are shown in one-line errors.

Every error of the configuration starts with the file that defines the key at fault (``conf/prod/vertexai.yml``
over ``conf/base/vertexai.yml``), so a user edits the right one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _key_path(loc: tuple[str, ...]) -> str:
    """``run_config.resources.train``, with a key that is not plain printable ASCII shown escaped."""
    return ".".join(part if part.isascii() and part.isprintable() else ascii(part) for part in loc)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _config_files(source: Path, env: str | None, config_loader: Any, prefix: str = "vertexai") -> list[Path]:
    base = getattr(config_loader, "base_env", "base") or "base"
    default_run_env = getattr(config_loader, "default_run_env", "local") or "local"
    files: list[Path] = []
    for env_name in dict.fromkeys([base, env or default_run_env]):
        folder = source / env_name
        if folder.is_dir():
            # the files CONFIG_PATTERNS match: named vertexai*, or inside a vertexai* folder (``prefix``)
            files += sorted(
                path
                for path in folder.rglob("*")
                if path.suffix in {".yml", ".yaml"}
                and any(part.startswith(prefix) for part in path.relative_to(folder).parts)
            )
    return files


def file_defining(files: list[Path], loc: tuple[str, ...]) -> str:
    """The last file (highest precedence) that defines the longest prefix of ``loc``."""
    import yaml

    best, best_depth = None, -1
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except Exception:
            continue
        depth, node = 0, data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node, depth = node[part], depth + 1
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node, depth = node[int(part)], depth + 1
            else:
                break
        if depth >= best_depth:
            best, best_depth = path, depth
    return _display(best) if best else "vertexai.yml"


def _display(path: Path) -> str:
    """``path`` relative to the working directory, else its last three parts (``conf/base/vertexai.yml``)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(Path(*path.parts[-3:])) if len(path.parts) > 3 else str(path)
