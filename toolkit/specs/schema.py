"""The JSON Schema of a pipeline spec, generated from the pydantic models in :mod:`toolkit.specs.models`.

Editors validate and complete ``pipelines/*.yaml`` with it: the YAML language server (VS Code's
YAML extension, JupyterLab's LSP) reads a first line ``# yaml-language-server: $schema=PATH``.
The shipped copy lives beside the specs (``pipelines/pipeline.schema.json``); ``make test``
fails when it no longer matches the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.core.errors import UsageError
from toolkit.core.fsutil import atomic_write_text
from toolkit.specs.models import Pipeline

SCHEMA_FILE = "pipeline.schema.json"  # in a project's pipelines/ folder, beside the specs
REGENERATE = f"toolkit schema -o pipelines/{SCHEMA_FILE}"
# The first line of a spec in pipelines/: editors with a YAML language server read it.
SCHEMA_COMMENT = f"# yaml-language-server: $schema={SCHEMA_FILE}"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _drop_path_format(node: Any) -> None:
    """pydantic marks ``Path`` fields ``format: path``, which no JSON Schema validator knows."""
    if isinstance(node, dict):
        if node.get("format") == "path":
            del node["format"]
        for value in node.values():
            _drop_path_format(value)
    elif isinstance(node, list):
        for value in node:
            _drop_path_format(value)


def pipeline_schema() -> dict[str, Any]:
    """The schema as a dict: unknown keys are refused (``additionalProperties: false``)."""
    schema = Pipeline.model_json_schema(mode="validation")
    _drop_path_format(schema)
    schema["title"] = "toolkit pipeline spec"
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def schema_text() -> str:
    """The schema file's exact content (stable: it is committed and compared in tests)."""
    return json.dumps(pipeline_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(output: Path) -> Path:
    """Write the schema to ``output`` atomically; its folder must exist (a typo is not created).

    Raises:
        UsageError: the folder is missing (exit 2).
    """
    folder = output.parent
    if not folder.is_dir():
        raise UsageError(
            f"cannot write {output}: folder {folder} does not exist",
            hint=f"create it first, or write the schema beside the specs: {REGENERATE}",
        )
    atomic_write_text(output, schema_text())
    return output
