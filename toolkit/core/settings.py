"""Project settings: where the project is, where runs go, which tracking backend to use.

Settings come, in increasing priority, from built-in defaults, ``[tool.toolkit]`` in the
project's ``pyproject.toml``, and environment variables (``MLFLOW_TRACKING_URI``,
``TOOLKIT_RUNS_DIR``, ``TOOLKIT_KERNEL``). Paths are absolute, resolved against the project root.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.core.errors import ToolkitError

DEFAULT_SECRET_PATTERNS: tuple[str, ...] = ("*password*", "*token*", "*secret*", "*api_key*")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one project."""

    root: Path
    runs_dir: Path
    expectations_dir: Path
    tracking_uri: str
    artifacts_dir: Path
    kernel: str = "python3"
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def cache_dir(self) -> Path:
        return self.root / ".toolkit"


def find_root(start: Path | None = None) -> Path:
    """Return the project root: the nearest directory at or above ``start`` with a pyproject.toml.

    A spec outside any project (e.g. in a temporary folder) falls back to the parent of its
    ``pipelines/`` folder, or the folder itself.
    """
    start = (start or Path.cwd()).resolve()
    if start.is_file():
        start = start.parent
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return start.parent if start.name == "pipelines" else start


def _read_tool_table(root: Path) -> dict[str, object]:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ToolkitError(f"{pyproject}: cannot read [tool.toolkit]: {exc}") from exc
    table = data.get("tool", {}).get("toolkit", {})
    if not isinstance(table, dict):
        raise ToolkitError(f"{pyproject}: [tool.toolkit] must be a table")
    return table


def _sqlite_uri(path: Path) -> str:
    return "sqlite:///" + path.as_posix()


def load_settings(start: Path | None = None) -> Settings:
    """Resolve the settings of the project that contains ``start`` (a spec file or folder)."""
    root = find_root(start)
    table = _read_tool_table(root)

    def path_setting(key: str, env: str, default: str) -> Path:
        raw = os.environ.get(env) or str(table.get(key, default))
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (root / path).resolve()

    runs_dir = path_setting("runs_dir", "TOOLKIT_RUNS_DIR", "runs")
    expectations_dir = path_setting("expectations_dir", "TOOLKIT_EXPECTATIONS_DIR", "expectations")
    artifacts_dir = path_setting("artifacts_dir", "TOOLKIT_ARTIFACTS_DIR", "mlruns")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or table.get("tracking_uri")
    if uri is None:
        uri = _sqlite_uri(root / "mlflow.db")
    elif (
        isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
    ):
        # A relative sqlite path would follow the process cwd; pin it to the project.
        uri = _sqlite_uri((root / uri.removeprefix("sqlite:///")).resolve())
    patterns = table.get("secret_patterns", DEFAULT_SECRET_PATTERNS)
    if not isinstance(patterns, list | tuple):
        # A bare string would iterate as one-letter patterns that match no real name.
        raise ToolkitError(f"{root / 'pyproject.toml'}: secret_patterns must be a list of patterns")
    known = {"runs_dir", "expectations_dir", "artifacts_dir", "tracking_uri", "kernel"}
    return Settings(
        root=root,
        runs_dir=runs_dir,
        expectations_dir=expectations_dir,
        tracking_uri=str(uri),
        artifacts_dir=artifacts_dir,
        kernel=os.environ.get("TOOLKIT_KERNEL") or str(table.get("kernel", "python3")),
        secret_patterns=tuple(str(p) for p in patterns),
        extra={k: v for k, v in table.items() if k not in known | {"secret_patterns"}},
    )
