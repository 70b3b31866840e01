"""Keep secrets out of everything the toolkit records: params, tags, logs and notebooks.

Two complementary defences:

* **By name.** A parameter whose name matches one of the project's ``secret_patterns``
  (fnmatch, case-insensitive) or that the spec declares secret has its *value* replaced by
  :data:`REDACTED` before it is logged (:func:`redact_params`).
* **By value.** A secret's value can still leak through free text: a traceback, a ``print``, a
  connection string in an error. :class:`Redactor` knows the secret values of the current run and
  scrubs them (and their common escaped forms) out of any text. :func:`scrub_notebook` applies
  both defences to an executed ``.ipynb`` and writes a *copy* fit to be logged as an artifact.

This module imports nothing heavy and never touches MLflow.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from toolkit.core.envflags import env_flag
from toolkit.core.fsutil import atomic_write_bytes, atomic_write_text

REDACTED = "***"

#: Secret values shorter than this are not scrubbed from free text: a 1-3 character "secret"
#: would turn every occurrence of e.g. "1" or "on" into "***" and wreck logs, while protecting
#: nothing an attacker could not guess. Parameters are still redacted *by name* at any length.
DEFAULT_MIN_LENGTH = 4

# Output payloads that are base64 binary: scrubbing them could only corrupt the image (a
# short secret matches random base64 by chance), and real secrets never live in pixels.
_BINARY_MIME_PREFIXES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")
_ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")


def is_secret(name: str, patterns: Iterable[str], declared: Collection[str] = frozenset()) -> bool:
    """True when ``name`` is declared secret or matches one of ``patterns`` (case-insensitive)."""
    if name in declared:
        return True
    return _matches(name.lower(), tuple(patterns))


@functools.lru_cache(maxsize=4096)
def _matches(lowered: str, patterns: tuple[str, ...]) -> bool:
    """Kept per name and patterns: a run's records ask about the same few parameter names for
    every step (1,800 times for 200 steps, ~20 ms of matching)."""
    # fnmatchcase on lowered strings: fnmatch.fnmatch would be case-sensitive on POSIX.
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def redact_params(
    params: Mapping[str, object],
    *,
    patterns: Iterable[str],
    declared: Collection[str] = frozenset(),
) -> dict[str, object]:
    """Return a copy of ``params`` whose secret values are replaced by :data:`REDACTED`.

    Nested mappings are walked too, so ``{"db": {"password": "x"}}`` is redacted as well; a
    secret key hides its whole value, whatever its type.
    """
    patterns = tuple(patterns)

    def walk(value: object) -> object:
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if is_secret(str(k), patterns, declared) else walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    result = walk(params)
    assert isinstance(result, dict)
    return result


def secret_values(
    params: Mapping[str, object],
    *,
    patterns: Iterable[str],
    declared: Collection[str] = frozenset(),
) -> set[str]:
    """The string values of every secret parameter in ``params`` (nested mappings included)."""
    patterns = tuple(patterns)
    found: set[str] = set()

    def collect(value: object) -> None:
        # Everything below a secret key is secret: a dict of credentials, a list of tokens.
        if isinstance(value, Mapping):
            for v in value.values():
                collect(v)
        elif isinstance(value, list | tuple):
            for v in value:
                collect(v)
        elif value is not None and not isinstance(value, bool):
            found.add(str(value))

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if is_secret(str(k), patterns, declared):
                    collect(v)
                else:
                    walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(params)
    return found


def _variants(value: str) -> set[str]:
    """The forms a secret takes when printed, repr'd, JSON-encoded or put in a URL."""
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], urllib.parse.quote(value, safe="")}
    forms.add(urllib.parse.quote_plus(value))
    return {f for f in forms if f}


class Redactor:
    """Scrubs known secret values out of text. Thread-safe; cheap to call when it knows none.

    An instance is a ``Callable[[str], str]``, which is the redaction hook :class:`Tracker`
    accepts, so every param, tag and JSON artifact the tracker writes passes through it.
    """

    def __init__(self, values: Iterable[str] = (), *, min_length: int = DEFAULT_MIN_LENGTH) -> None:
        self.min_length = min_length
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(*values)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, object],
        *,
        patterns: Iterable[str],
        declared: Collection[str] = frozenset(),
        min_length: int = DEFAULT_MIN_LENGTH,
    ) -> Redactor:
        """A redactor that knows the values of every secret parameter in ``params``."""
        values = secret_values(params, patterns=patterns, declared=declared)
        return cls(values, min_length=min_length)

    def add(self, *values: str) -> None:
        """Teach the redactor more secret values (e.g. secrets resolved from the environment)."""
        with self._lock:
            for value in values:
                if value and len(value) >= self.min_length:
                    self._values.update(_variants(value))
            if self._values:
                # Longest first so that a secret containing another is replaced whole.
                alternation = "|".join(
                    re.escape(v) for v in sorted(self._values, key=len, reverse=True)
                )
                self._pattern = re.compile(alternation)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def scrub(self, text: str) -> str:
        """Return ``text`` with every known secret value replaced by :data:`REDACTED`."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    __call__ = scrub

    def scrub_obj(self, obj: object) -> object:
        """Scrub every string inside a JSON-like structure (dict keys included)."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, Mapping):
            return self.scrub_mapping(obj)
        if isinstance(obj, list | tuple):
            return [self.scrub_obj(v) for v in obj]
        return obj

    def scrub_mapping(self, obj: Mapping[str, object]) -> dict[str, object]:
        """:meth:`scrub_obj` of a mapping, typed as the dict it returns."""
        return {self.scrub(str(k)): self.scrub_obj(v) for k, v in obj.items()}


def _scrub_source(source: object, redactor: Redactor) -> object:
    """nbformat stores text either as one string or as a list of lines; keep the shape."""
    if isinstance(source, list):
        return [redactor.scrub(line) if isinstance(line, str) else line for line in source]
    return redactor.scrub(source) if isinstance(source, str) else source


def _redact_assignments(
    source: object, patterns: tuple[str, ...], declared: Collection[str]
) -> str:
    """Blank the right-hand side of ``secret_name = value`` lines of an injected-parameters cell.

    This catches secrets too short for the value scrubber and values papermill rendered in a
    form the scrubber does not know (e.g. a dict literal).
    """
    text = "".join(source) if isinstance(source, list) else str(source or "")
    lines = []
    for line in text.splitlines(keepends=True):
        match = _ASSIGNMENT.match(line.rstrip("\r\n"))
        if match and is_secret(match.group(2), patterns, declared):
            ending = line[len(line.rstrip("\r\n")) :]
            line = f"{match.group(1)}{match.group(2)}{match.group(3)}{REDACTED!r}{ending}"
        lines.append(line)
    return "".join(lines)


def scrub_notebook_dict(
    nb: dict,
    redactor: Redactor,
    *,
    patterns: Iterable[str] = (),
    declared: Collection[str] = frozenset(),
) -> dict:
    """Scrub a parsed notebook in place and return it (see :func:`scrub_notebook`)."""
    patterns = tuple(patterns)
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "parameters" in tags:
            cell["source"] = _redact_assignments(cell.get("source", ""), patterns, declared)
        cell["source"] = _scrub_source(cell.get("source", ""), redactor)
        for output in cell.get("outputs", []):
            data = output.get("data")
            if isinstance(data, dict):
                for mime, payload in data.items():
                    if not mime.startswith(_BINARY_MIME_PREFIXES):
                        data[mime] = redactor.scrub_obj(payload)
            for key in ("text", "traceback", "evalue", "ename"):
                if key in output:
                    output[key] = _scrub_source(output[key], redactor)
            if isinstance(output.get("metadata"), dict):
                output["metadata"] = redactor.scrub_obj(output["metadata"])
        # Attachments are base64 images; every other cell field is small metadata.
        if "metadata" in cell:
            cell["metadata"] = redactor.scrub_obj(cell["metadata"])
    # papermill records the raw parameter values in the notebook metadata.
    metadata = nb.get("metadata", {})
    papermill = metadata.get("papermill")
    if isinstance(papermill, dict):
        for key in ("parameters", "default_parameters"):
            if isinstance(papermill.get(key), Mapping):
                papermill[key] = redact_params(papermill[key], patterns=patterns, declared=declared)
    nb["metadata"] = redactor.scrub_obj(metadata)
    return nb


def scrub_notebook(
    src: Path,
    dst: Path,
    redactor: Redactor,
    *,
    patterns: Iterable[str] = (),
    declared: Collection[str] = frozenset(),
) -> Path:
    """Write to ``dst`` a copy of the executed notebook ``src`` with secrets removed.

    The original stays untouched: it lives in the local run folder, and only the copy goes to the
    tracking server. Covered: every cell's source, the injected-parameters cell (by name and by
    value), all text outputs, tracebacks, cell metadata and papermill's recorded parameters.
    """
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    scrub_notebook_dict(nb, redactor, patterns=patterns, declared=declared)
    # nbformat's own on-disk style (indent=1, real unicode) so the copy diffs cleanly.
    atomic_write_text(Path(dst), json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return Path(dst)


# Opt-in: keep the executed notebook exactly as the kernel left it, next to the scrubbed one
# (``notebooks/<step>.unscrubbed.ipynb``, mode 0600), for debugging a secret-dependent failure.
KEEP_UNSCRUBBED_ENV = "TOOLKIT_KEEP_UNSCRUBBED_NOTEBOOKS"


def scrub_notebook_in_place(
    path: Path,
    redactor: Redactor,
    *,
    patterns: Iterable[str] = (),
    declared: Collection[str] = frozenset(),
    keep_unscrubbed: bool | None = None,
) -> Path | None:
    """Scrub the executed notebook at ``path`` itself, the way the MLflow copy is scrubbed.

    With ``keep_unscrubbed`` (default: the ``TOOLKIT_KEEP_UNSCRUBBED_NOTEBOOKS`` variable set
    to 1), the original is first kept as ``<name>.unscrubbed.ipynb``, readable by its owner
    only; that path is returned. A notebook that is not valid JSON (cut short by a killed
    kernel) cannot be scrubbed cell by cell: it is made private (0600) instead.
    """
    if keep_unscrubbed is None:
        keep_unscrubbed = env_flag(KEEP_UNSCRUBBED_ENV) is True
    raw = path.read_bytes()
    kept = None
    if keep_unscrubbed:
        kept = path.with_name(f"{path.stem}.unscrubbed.ipynb")
        atomic_write_bytes(kept, raw)  # mkstemp: created 0600
        os.chmod(kept, 0o600)
    try:
        nb = json.loads(raw.decode("utf-8"))
    except ValueError:
        os.chmod(path, 0o600)
        return kept
    scrub_notebook_dict(nb, redactor, patterns=patterns, declared=declared)
    atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return kept


def scrub_file(path: Path, redactor: Redactor) -> bool:
    """Scrub a text file in place, e.g. a kernel's own log: what a C library, a subprocess or
    ``os.write`` printed never passes through the notebook's outputs, so nothing else scrubs it.
    Bytes that are not UTF-8 are kept as they are. True when something was replaced."""
    if not redactor:
        return False
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return False
    text = raw.decode("utf-8", errors="surrogateescape")
    scrubbed = redactor.scrub(text)
    if scrubbed == text:
        return False
    atomic_write_bytes(path, scrubbed.encode("utf-8", errors="surrogateescape"))
    return True
