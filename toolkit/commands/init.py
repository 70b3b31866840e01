"""``toolkit init``: start a project in one command.

A new project gets ``pyproject.toml`` with a ``[tool.toolkit]`` table, ``notebooks/``,
``pipelines/``, ``expectations/`` and ``data/``, a ``.gitignore`` for runs, the MLflow store and
the cache, a README on setting up, running and locking, a one-step example pipeline that runs
at once, and the project's Jupyter kernel (:mod:`toolkit.execute.kernelspecs`). Everything comes from
the templates in ``toolkit/templates/project``.

Nothing is ever overwritten. A folder that already holds a toolkit project is refused, with
nothing written. In an existing Python project the ``[tool.toolkit]`` table is appended to its
``pyproject.toml`` and missing ignore lines to its ``.gitignore``; other files that exist are
kept as they are, and the example is left out if any of its files exists. Every file is
rendered first, then written; if a write fails, what this call wrote is undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from toolkit import __version__
from toolkit.commands.templating import render_notebook, render_string, render_text, walk
from toolkit.core.errors import ToolkitError
from toolkit.core.fsutil import write_new_text
from toolkit.execute.kernelspecs import (
    BUILTIN_KERNELS,
    KernelInstall,
    install_kernel,
    kernel_name_for,
)
from toolkit.specs.schema import SCHEMA_FILE, schema_text

DISTRIBUTION = "nbgate"
FOLDERS = ("notebooks", "pipelines", "expectations", "data")
EXAMPLE_FILES = ("notebooks/summarise.ipynb", "pipelines/example.yaml", "data/measurements.csv")
EXAMPLE_SPEC = "pipelines/example.yaml"
KernelScope = Literal["auto", "user", "none"]


class InitError(ToolkitError):
    """``toolkit init`` will not create a project there (exit 2); nothing was written."""


@dataclass(frozen=True)
class InitRequest:
    """What ``toolkit init`` was asked."""

    directory: Path
    name: str | None = None  # default: the folder's name
    kernel: KernelScope = "auto"  # auto: this environment if writable, else the user's folder
    kernel_name: str | None = None  # default: derived from the project's name
    schema_comment: str | None = None  # first line of specs, for editors that read it


@dataclass(frozen=True)
class InitResult:
    """What ``toolkit init`` did."""

    root: Path
    project: str
    kernel_name: str
    created: tuple[Path, ...] = ()
    appended: tuple[Path, ...] = ()
    kept: tuple[Path, ...] = ()
    example: Path | None = None
    kernel: KernelInstall | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        kernel = None
        if self.kernel is not None:
            kernel = {
                "name": self.kernel.name,
                "path": str(self.kernel.path),
                "scope": self.kernel.scope,
                "interpreter": self.kernel.interpreter,
                "reused": self.kernel.reused,
            }
        return {
            "root": str(self.root),
            "project": self.project,
            "kernel_name": self.kernel_name,
            "kernel": kernel,
            "created": [str(p) for p in self.created],
            "appended": [str(p) for p in self.appended],
            "kept": [str(p) for p in self.kept],
            "example": str(self.example) if self.example else None,
            "notes": list(self.notes),
        }

    def to_text(self, cwd: Path | None = None) -> str:
        here = cwd or Path.cwd()

        def rel(path: Path) -> str:
            try:
                return str(path.relative_to(self.root))
            except ValueError:
                return str(path)

        lines = []
        if self.created or self.appended:
            lines.append(
                f"created the toolkit project {self.project!r} in {_shell_path(self.root, here)}"
            )
        lines += [f"  created  {rel(p)}" for p in self.created]
        lines += [f"  appended {rel(p)}" for p in self.appended]
        lines += [f"  kept     {rel(p)} (exists)" for p in self.kept]
        if self.kernel is not None:
            verb = "already installed" if self.kernel.reused else "installed"
            lines.append(
                f"kernel {self.kernel.name!r} {verb} ({self.kernel.scope}): {self.kernel.path}"
            )
            lines.append(f"  it runs {self.kernel.interpreter}")
        lines += [f"note: {n}" for n in self.notes]
        if self.created or self.appended:
            go = _shell_path(self.root, here)
            lines.append("next:")
            if go != ".":
                lines.append(f"  cd {go}")
            if self.example is not None:
                lines.append(f"  toolkit run {rel(self.example)}     # the example runs at once")
            lines += [
                "  jupyter lab                            # notebooks open with the project's kernel",
                "  toolkit new pipeline NAME --notebooks notebooks/a.ipynb notebooks/b.ipynb",
                "  lock the environment: list your notebooks' libraries in pyproject.toml, then",
                "    `uv lock` (commit uv.lock) or `pip freeze > requirements.lock`  (README.md)",
            ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- planning


def _read_pyproject(path: Path) -> dict[str, object] | None:
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InitError(
            f"{path} exists but cannot be read as TOML: {exc}",
            hint="fix it first; toolkit init only adds a [tool.toolkit] table to it",
        ) from exc


def has_toolkit_table(data: dict[str, object] | None) -> bool:
    tool = data.get("tool") if data else None
    return isinstance(tool, dict) and "toolkit" in tool


def _toolkit_table(data: dict[str, object] | None) -> dict[str, object] | None:
    tool = data.get("tool") if data else None
    table = tool.get("toolkit") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else None


def installed_source() -> tuple[str | None, bool]:
    """Where this environment installed nbgate from (a local wheel or folder), if known.

    PEP 610's ``direct_url.json`` records it; an install from an index has none.
    """
    try:
        raw = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None, False
    if not raw:
        return None, False
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        info = json.loads(raw)
        url = urlparse(info["url"])
        if url.scheme == "file":
            editable = bool(info.get("dir_info", {}).get("editable"))
            return unquote(url.path), editable
    return None, False


@dataclass
class _Plan:
    creates: dict[Path, str] = field(default_factory=dict)
    appends: dict[Path, tuple[str, str]] = field(default_factory=dict)  # path: (old, new)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    example: Path | None = None


def _context(request: InitRequest, root: Path, project: str, kernel: str) -> dict[str, object]:
    source, editable = installed_source()
    return {
        "project": project,
        "kernel": kernel,
        "requirement": f"{DISTRIBUTION}=={__version__}",
        "source": source,
        "editable": editable,
        "schema_comment": request.schema_comment,
        "toolkit_table": render_text("toolkit_table.toml.j2", {"kernel": kernel}).rstrip("\n"),
    }


def _plan(root: Path, context: dict[str, object], kernelspec: dict[str, str]) -> _Plan:
    plan = _Plan()
    example_taken = [rel for rel in EXAMPLE_FILES if (root / rel).exists()]
    for rel, source in walk("project"):
        dest_rel = rel.removesuffix(".j2")
        dest_rel = "/".join("." + p if p == "gitignore" else p for p in dest_rel.split("/"))
        dest = root / dest_rel
        if dest_rel in EXAMPLE_FILES and example_taken:
            continue
        if rel.endswith(".ipynb"):
            text = render_notebook(f"project/{rel}", context, kernelspec=kernelspec)
        elif rel.endswith(".j2"):
            text = render_string(source.read_text(encoding="utf-8"), context)
        else:
            text = source.read_text(encoding="utf-8")
        if not dest.exists():
            plan.creates[dest] = text
        elif dest_rel == "pyproject.toml":
            plan.appends[dest] = _append_table(dest, str(context["toolkit_table"]))
            plan.notes.append(
                f"add {DISTRIBUTION}=={__version__} to the dependencies in pyproject.toml "
                "so a lock pins it"
            )
        elif dest_rel == ".gitignore":
            old = dest.read_text(encoding="utf-8")
            missing = [ln for ln in text.splitlines() if ln and ln not in old.splitlines()]
            if any(not ln.startswith("#") for ln in missing):
                sep = "" if not old or old.endswith("\n") else "\n"
                addition = "\n".join(ln for ln in missing if not ln.startswith("#"))
                plan.appends[dest] = (old, f"{old}{sep}\n# toolkit\n{addition}\n")
        else:
            plan.kept.append(dest)
    # The specs' JSON Schema beside them, for editors (the specs' first line names it); made
    # from this toolkit's models, so it matches the version that runs them.
    schema = root / "pipelines" / SCHEMA_FILE
    if schema.exists():
        plan.kept.append(schema)
    else:
        plan.creates[schema] = schema_text()
    if example_taken:
        plan.notes.append(
            "the example pipeline was not created: "
            + ", ".join(example_taken)
            + " already exist(s)"
        )
    else:
        plan.example = root / EXAMPLE_SPEC
    return plan


def _append_table(path: Path, table: str) -> tuple[str, str]:
    old = path.read_text(encoding="utf-8")
    sep = "" if not old or old.endswith("\n") else "\n"
    new = f"{old}{sep}\n{table}\n"
    try:
        ok = has_toolkit_table(tomllib.loads(new))
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise InitError(
            f"cannot add a [tool.toolkit] table to {path} safely (it defines 'tool' in a way "
            "a table cannot be appended to)",
            hint=f"add it by hand:\n{table}",
        )
    return old, new


# ----------------------------------------------------------------------------- writing


def _write(plan: _Plan, root: Path) -> list[Path]:
    created: list[Path] = []
    made_dirs: list[Path] = []
    appended: list[tuple[Path, str]] = []
    try:
        for folder in (root, *(root / f for f in FOLDERS)):
            if not folder.exists():
                folder.mkdir(parents=True)
                made_dirs.append(folder)
        for path, text in plan.creates.items():
            write_new_text(path, text)
            created.append(path)
        for path, (old, new) in plan.appends.items():
            if path.read_text(encoding="utf-8") != old:
                raise InitError(f"{path} changed while toolkit init ran; run it again")
            path.write_text(new, encoding="utf-8")
            appended.append((path, old))
    except BaseException:
        for path, old in appended:
            path.write_text(old, encoding="utf-8")
        for path in created:
            path.unlink(missing_ok=True)
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return created


# ----------------------------------------------------------------------------- the commands


def init_project(request: InitRequest) -> InitResult:
    """Create a toolkit project in ``request.directory`` (created if missing).

    Raises:
        InitError: the folder already holds a toolkit project, is a file, or its
            pyproject.toml cannot take a ``[tool.toolkit]`` table; nothing is written.
        KernelInstallError: the kernel cannot be installed; nothing is written.
    """
    root = request.directory.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise InitError(f"{root} exists and is not a folder")
    for folder in (root / f for f in FOLDERS):
        if folder.exists() and not folder.is_dir():  # found before anything is written
            raise InitError(
                f"{folder} exists and is not a folder; a project keeps its {folder.name} there",
                hint="rename or move that file, then run toolkit init again: nothing was written",
            )
    pyproject = root / "pyproject.toml"
    if has_toolkit_table(_read_pyproject(pyproject)):
        raise InitError(
            f"{root} already holds a toolkit project ([tool.toolkit] in pyproject.toml)",
            hint="nothing was written; to install its kernel for this Python: "
            f"toolkit init --kernel-only {_shell_path(root)}",
        )
    project = request.name or root.name or "project"
    if request.kernel == "none":
        kernel_name, display = "python3", "Python 3 (ipykernel)"
    else:
        kernel_name = request.kernel_name or kernel_name_for(project)
        display = f"Python ({project})"
    context = _context(request, root, project, kernel_name)
    kernelspec = {"name": kernel_name, "display_name": display, "language": "python"}
    plan = _plan(root, context, kernelspec)
    installed = None
    if request.kernel != "none":
        # Before any file: a refused kernel name leaves the folder untouched.
        installed = install_kernel(kernel_name, display, user=request.kernel == "user" or None)
    created = _write(plan, root)
    return InitResult(
        root=root,
        project=project,
        kernel_name=kernel_name,
        created=tuple(created),
        appended=tuple(plan.appends),
        kept=tuple(plan.kept),
        example=plan.example,
        kernel=installed,
        notes=tuple(plan.notes),
    )


def install_project_kernel(directory: Path, *, user: bool | None = None) -> InitResult:
    """``toolkit init --kernel-only``: install an existing project's kernel for this Python.

    Raises:
        InitError: ``directory`` holds no toolkit project.
        KernelInstallError: the kernel name is invalid or taken by another interpreter.
    """
    root = directory.expanduser().absolute()
    data = _read_pyproject(root / "pyproject.toml")
    table = _toolkit_table(data)
    if data is None or table is None:
        raise InitError(
            f"{root} holds no toolkit project (no [tool.toolkit] in pyproject.toml)",
            hint=f"create one with: toolkit init {_shell_path(root)}",
        )
    name = str(os.environ.get("TOOLKIT_KERNEL") or table.get("kernel", "python3"))
    project_table = data.get("project")
    project = str(project_table.get("name", root.name)) if isinstance(project_table, dict) else ""
    project = project or root.name
    installed = None
    notes: list[str] = []
    if name in BUILTIN_KERNELS:
        notes.append(f"the project uses the built-in kernel {name!r}: nothing to install")
    else:
        installed = install_kernel(name, f"Python ({project})", user=user)
    return InitResult(
        root=root, project=project, kernel_name=name, kernel=installed, notes=tuple(notes)
    )


def _shell_path(path: Path, cwd: Path | None = None) -> str:
    try:
        rel = path.relative_to(cwd or Path.cwd())
        return str(rel) if str(rel) != "." else "."
    except ValueError:
        return str(path)
