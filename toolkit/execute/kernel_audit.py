"""Runs at the start of every step kernel: records the files the notebook reads and writes,
and makes the notebook's own MLflow calls resume its step's run.

The step cache must cover every file a step actually read, declared or not. Python raises an
audit event for every ``open`` (builtins, ``pathlib``, pandas' CSV/JSON readers, ``np.load``,
``pickle``, ``os.open``), so one hook in the kernel sees them without touching the notebook.
pyarrow opens Parquet files natively (no event): its readers are wrapped once imported.

It is started with ``--IPKernelApp.exec_lines`` through :func:`runpy.run_path`, so it needs
nothing but the standard library (any Python kernel can run it) and leaves no name in the
notebook's namespace. Each path is appended, once, as a JSON line to ``TOOLKIT_AUDIT_FILE``
with ``os.write`` on a descriptor opened here (``os.write`` raises no event, so the hook never
sees itself). Only paths under ``TOOLKIT_AUDIT_ROOTS`` are kept; the interpreter's own files
are skipped. A failure inside the hook is swallowed: it would otherwise surface in the user's
``open``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def install() -> None:
    import contextlib
    import json
    import os
    import sys

    target = os.environ.get("TOOLKIT_AUDIT_FILE")
    if not target or getattr(sys, "_toolkit_audit_installed", False):
        return
    roots = tuple(
        os.path.join(os.path.abspath(r), "")
        for r in os.environ.get("TOOLKIT_AUDIT_ROOTS", "").split(os.pathsep)
        if r
    )
    skip = tuple(
        os.path.join(os.path.abspath(p), "")
        for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev"}
        | {os.environ.get(v, "") for v in ("IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR")}
        if p
    )
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    ignore = {os.path.abspath(target), os.path.abspath(os.environ.get("TOOLKIT_EVENTS_FILE", "."))}
    seen: set[tuple[str, str]] = set()
    state = {"busy": False}
    abspath, fspath, write, dumps = os.path.abspath, os.fspath, os.write, json.dumps

    def record(op: str, path: object) -> None:
        try:
            name = fspath(path)  # type: ignore[call-overload]
            if isinstance(name, bytes):
                name = name.decode(sys.getfilesystemencoding(), "replace")
            name = abspath(name)
        except (TypeError, ValueError):
            return
        if (op, name) in seen or name in ignore or not name.startswith(roots):
            return
        if name.startswith(skip) or name.endswith(".pyc") or "__pycache__" in name:
            return
        seen.add((op, name))
        write(fd, (dumps({"op": op, "path": name}) + "\n").encode())

    def wrap_pyarrow() -> None:
        # pyarrow reads Parquet in C++: no open event. Wrap its entry points once imported.
        # Looked up, not imported (the notebook may never load it); pyarrow has no types.
        parquet: Any = sys.modules.get("pyarrow.parquet")
        if parquet is None or not hasattr(parquet, "read_table"):
            return

        def traced(func):
            def wrapper(source, *args, **kwargs):
                if isinstance(source, str | bytes | os.PathLike):
                    record("read", source)
                return func(source, *args, **kwargs)

            wrapper.__wrapped__ = func  # type: ignore[attr-defined]
            wrapper.__doc__ = func.__doc__
            return wrapper

        parquet.read_table = traced(parquet.read_table)
        if hasattr(parquet, "read_pandas"):
            parquet.read_pandas = traced(parquet.read_pandas)
        write_table = parquet.write_table

        def traced_write(table, where, *args, **kwargs):
            if isinstance(where, str | bytes | os.PathLike):
                record("write", where)
            return write_table(table, where, *args, **kwargs)

        parquet.write_table = traced_write
        init = parquet.ParquetFile.__init__

        def file_init(self, source, *args, **kwargs):
            if isinstance(source, str | bytes | os.PathLike):
                record("read", source)
            init(self, source, *args, **kwargs)

        parquet.ParquetFile.__init__ = file_init

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if state["busy"]:
            return
        state["busy"] = True
        try:
            if event == "open":
                path, _mode, flags = args
                if isinstance(path, int) or path is None:
                    return
                access = (flags or 0) & 3  # 0 read, 1 write, 2 both
                if access != 1:
                    record("read", path)
                if access != 0:
                    record("write", path)
        except Exception:  # the user's open() must never fail because of us
            pass
        finally:
            state["busy"] = False

    def bind_mlflow() -> None:
        # The notebook's own mlflow.start_run() (autolog's managed runs included) resumes the
        # step's run instead of opening a new one. MLflow reads MLFLOW_RUN_ID only once (it
        # deletes it), so an autologged fit would otherwise end the step run and leave the
        # next log_metric to open a stray run. Nested runs stay children of the step run.
        fluent: Any = sys.modules["mlflow.tracking.fluent"]  # MLflow's types are not followed
        original = fluent.start_run

        def start_run(*args, **kwargs):
            step_run = os.environ.get("TOOLKIT_MLFLOW_RUN_ID")
            unbound = not args and kwargs.get("run_id") is None and not kwargs.get("parent_run_id")
            if not (step_run and unbound and not fluent.active_run()):
                return original(*args, **kwargs)
            if not kwargs.get("nested"):
                kwargs["run_id"] = step_run
                kwargs.pop("run_name", None)  # the step's run keeps the step's name
                return original(*args, **kwargs)
            # A nested run with no run active (a loop of `with start_run(nested=True)`, as a
            # search over parameters does) is a child of the step's run. Left alone, MLflow would
            # resume the step's run from MLFLOW_RUN_ID instead (renaming it, ending it with the
            # block) and open the next ones at the top level.
            kwargs["parent_run_id"] = step_run
            hidden = os.environ.pop("MLFLOW_RUN_ID", None)
            try:
                return original(*args, **kwargs)
            finally:
                if hidden is not None:
                    os.environ["MLFLOW_RUN_ID"] = hidden

        start_run.__doc__ = original.__doc__
        start_run.__wrapped__ = original  # type: ignore[attr-defined]
        fluent.start_run = start_run

    after_load = {"pyarrow.parquet": wrap_pyarrow, "mlflow.tracking.fluent": bind_mlflow}

    class WrapAfterImport:
        """A meta path finder that instruments a few modules the moment they have loaded."""

        def find_spec(self, name, path=None, target=None):
            if name not in after_load:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None:
                    break
            else:
                return None
            exec_module = spec.loader.exec_module
            instrument = after_load.pop(name)

            def exec_and_wrap(module):
                exec_module(module)
                with contextlib.suppress(Exception):  # never break the user's import
                    instrument()

            spec.loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, WrapAfterImport())
    sys.addaudithook(hook)
    sys._toolkit_audit_installed = True  # type: ignore[attr-defined]


install()
