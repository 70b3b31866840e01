"""``toolkit init``: start a project, or install an existing project's kernel."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_init(args: argparse.Namespace) -> int:
    from toolkit.commands.init import (
        InitRequest,
        KernelScope,
        init_project,
        install_project_kernel,
    )
    from toolkit.specs.schema import SCHEMA_COMMENT

    scope: KernelScope = "none" if args.no_kernel else "user" if args.user_kernel else "auto"
    if args.kernel_only:
        user = True if args.user_kernel else None
        result = install_project_kernel(Path(args.directory), user=user)
    else:
        result = init_project(
            InitRequest(
                directory=Path(args.directory),
                name=args.name,
                kernel=scope,
                kernel_name=args.kernel_name,
                schema_comment=SCHEMA_COMMENT,
            )
        )
    print(dumps(result.to_dict(), indent=2) if args.json else result.to_text())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser(
        "init",
        help="start a project: pyproject.toml, folders, an example pipeline, the Jupyter kernel",
        description="Create a toolkit project in DIR (default: the current folder): "
        "pyproject.toml with a [tool.toolkit] table, notebooks/, pipelines/, expectations/, "
        "data/, a .gitignore, a README, a one-step example pipeline that runs at once, and a "
        "Jupyter kernel for this Python. Existing files are never overwritten; a folder that "
        "already holds a toolkit project is refused (exit 2).",
    )
    init.add_argument("directory", nargs="?", default=".", metavar="DIR")
    init.add_argument("--name", help="the project's name (default: DIR's name)")
    init.add_argument(
        "--kernel-name",
        metavar="NAME",
        help="the Jupyter kernel's name (default: derived from the project's name)",
    )
    where = init.add_mutually_exclusive_group()
    where.add_argument(
        "--user-kernel",
        action="store_true",
        help="install the kernel in your user Jupyter folder, for a JupyterLab outside this "
        "environment (default: inside this environment when it is writable)",
    )
    where.add_argument(
        "--no-kernel",
        action="store_true",
        help="install no kernel; steps run in 'python3', the toolkit's own Python",
    )
    init.add_argument(
        "--kernel-only",
        action="store_true",
        help="only install the kernel of the existing project in DIR for this Python "
        "(after cloning it into a new environment)",
    )
    init.add_argument("--json", action="store_true", help="print what was done as JSON")
    init.set_defaults(handler=cmd_init)
