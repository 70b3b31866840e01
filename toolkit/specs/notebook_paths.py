"""Guess which notebook parameters name files, and whether the notebook reads or writes them.

Used by ``toolkit new pipeline`` to draft a spec from notebooks nobody wrote for the toolkit.
It reads code with :mod:`ast` only, so it is a guess: every guess says what it was based on
(``pd.read_csv(raw)``, the parameter's name, whether the file exists) so a person can check it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# Calls whose arguments are files being read or written, by the called name's last part.
READERS = frozenset(
    {
        "read_csv", "read_table", "read_parquet", "read_json", "read_feather", "read_excel",
        "read_pickle", "read_orc", "read_hdf", "read_fwf", "read_text", "read_bytes", "load",
        "loadtxt", "genfromtxt", "fromfile", "imread", "ParquetFile", "dataset", "load_workbook",
        "read_file",
    }
)  # fmt: skip
WRITERS = frozenset(
    {
        "to_csv", "to_parquet", "to_json", "to_feather", "to_excel", "to_pickle", "to_hdf",
        "to_orc", "to_html", "to_markdown", "to_file", "write_text", "write_bytes", "dump",
        "save", "savez", "savez_compressed", "savetxt", "savefig", "imwrite", "write_table",
        "save_model", "touch",
    }
)  # fmt: skip
# Wrappers that pass a path through: Path(x), os.path.join(x, ...), str(x), x / "a.csv".
_PASS_THROUGH = frozenset({"Path", "PurePath", "join", "abspath", "expanduser", "str", "fspath"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*$")


def looks_like_path(value: object) -> bool:
    """A string that names a file: one line, no URL scheme, a file extension or a folder."""
    if not isinstance(value, str) or not value.strip() or "\n" in value or len(value) > 400:
        return False
    if _SCHEME.match(value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        return False  # s3://, models:/, http://; but C:\ is a path
    pure = PurePosixPath(value.replace("\\", "/"))
    return bool(_SUFFIX.match(pure.suffix)) or value.endswith(("/", "\\"))


@dataclass
class Usage:
    """How a notebook's code uses one name: the calls reading and writing it."""

    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _names_in(node: ast.expr, aliases: dict[str, str]) -> set[str]:
    """The parameters a path expression is built from: ``raw``, ``Path(raw)``, ``raw / "x"``."""
    if isinstance(node, ast.Name):
        return {aliases.get(node.id, node.id)}
    if isinstance(node, ast.Call) and _called_name(node.func) in _PASS_THROUGH:
        return set().union(*(_names_in(a, aliases) for a in node.args)) if node.args else set()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _names_in(node.left, aliases)
    if isinstance(node, ast.JoinedStr):
        return set().union(
            *(_names_in(v.value, aliases) for v in node.values if isinstance(v, ast.FormattedValue))
        )
    return set()


def _open_mode(call: ast.Call) -> str:
    mode: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return mode.value
    return "r"


def _describe(call: ast.Call, source: str) -> str:
    # One line: the description ends up in a YAML comment and in one line of the summary.
    text = " ".join((ast.get_source_segment(source, call) or _called_name(call.func)).split())
    return text if len(text) <= 60 else text[:57] + "..."


def scan_usage(sources: Iterable[str], names: Iterable[str]) -> dict[str, Usage]:
    """How the code cells ``sources`` read and write each of ``names``.

    Simple aliases are followed (``path = Path(raw)`` then ``pd.read_csv(path)``). Cells that
    are not valid Python (after blanking magics) are skipped.
    """
    wanted = set(names)
    usage = {name: Usage() for name in wanted}
    aliases: dict[str, str] = {}
    for raw in sources:
        source = "\n".join(
            "" if ln.lstrip().startswith(("%", "!")) else ln for ln in raw.splitlines()
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                found = _names_in(node.value, aliases) & wanted
                if isinstance(target, ast.Name) and len(found) == 1 and target.id not in wanted:
                    aliases[target.id] = found.pop()
            if not isinstance(node, ast.Call):
                continue
            called = _called_name(node.func)
            operands = [*node.args, *(kw.value for kw in node.keywords)]
            if called == "open":
                mode = _open_mode(node)
                kind = "writes" if any(c in mode for c in "wax+") else "reads"
                operands = node.args[:1]
            elif called in WRITERS:
                kind = "writes"
                if isinstance(node.func, ast.Attribute):  # Path(out).write_text(...)
                    operands = [node.func.value, *operands]
            elif called in READERS:
                kind = "reads"
                if isinstance(node.func, ast.Attribute):  # Path(raw).read_text()
                    operands = [node.func.value, *operands]
            else:
                continue
            hit = set().union(*(_names_in(op, aliases) for op in operands)) & wanted
            for name in hit:
                getattr(usage[name], kind).append(_describe(node, source))
    return usage


_OUT_WORDS = ("out", "output", "dest", "save", "target", "export", "report", "write")
_IN_WORDS = ("in", "input", "src", "source", "raw", "data", "load", "read")


def name_hint(name: str) -> str | None:
    """ "output" or "input" from a parameter's name (``out_path``, ``input_file``), or None."""
    words = {w.lower() for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name)}
    if words & set(_OUT_WORDS):
        return "output"
    if words & set(_IN_WORDS):
        return "input"
    return None
