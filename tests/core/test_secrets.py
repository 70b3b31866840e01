"""Secrets are redacted by name in params and scrubbed by value from text and notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from toolkit.core.secrets import (
    REDACTED,
    Redactor,
    is_secret,
    redact_params,
    scrub_notebook,
    secret_values,
)
from toolkit.core.settings import DEFAULT_SECRET_PATTERNS

PATTERNS = DEFAULT_SECRET_PATTERNS
SECRET = "s3cr3t-Value-42"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("db_password", True),
        ("DB_PASSWORD", True),
        ("GitHubToken", True),
        ("openai_API_KEY", True),
        ("client_secret", True),
        ("learning_rate", False),
        ("pass", False),
    ],
)
def test_is_secret_matches_patterns_case_insensitively(name: str, expected: bool) -> None:
    assert is_secret(name, PATTERNS) is expected


def test_is_secret_honours_declared_names() -> None:
    assert is_secret("dsn", PATTERNS, declared={"dsn"})
    assert not is_secret("dsn", PATTERNS)


def test_redact_params_replaces_secret_values_only_and_copies() -> None:
    params = {
        "lr": 0.1,
        "db_password": SECRET,
        "conn": {"host": "db", "api_key": SECRET, "nested": [{"token": SECRET}]},
        "dsn": "postgres://u:p@h/db",
    }
    redacted = redact_params(params, patterns=PATTERNS, declared={"dsn"})
    assert redacted == {
        "lr": 0.1,
        "db_password": REDACTED,
        "conn": {"host": "db", "api_key": REDACTED, "nested": [{"token": REDACTED}]},
        "dsn": REDACTED,
    }
    assert params["db_password"] == SECRET  # the input is not modified


def test_secret_values_collects_everything_under_a_secret_key() -> None:
    params = {"creds": {"user": "bob"}, "tokens": ["tok-aaaa", "tok-bbbb"], "n": 3, "x": "plain"}
    values = secret_values(params, patterns=PATTERNS, declared={"creds"})
    assert values == {"bob", "tok-aaaa", "tok-bbbb"}


def test_redactor_scrubs_values_and_their_escaped_forms() -> None:
    tricky = "pa'ss word/&="
    redactor = Redactor([SECRET, tricky])
    text = (
        f"connecting with {SECRET}\n"
        f"repr: {tricky!r}\n"
        f"json: {json.dumps({'k': tricky})}\n"
        "url: https://h/?k=pa%27ss%20word%2F%26%3D and pa%27ss+word%2F%26%3D"
    )
    scrubbed = redactor.scrub(text)
    assert SECRET not in scrubbed
    assert "pa'ss" not in scrubbed and "pa\\'ss" not in scrubbed and "pa%27ss" not in scrubbed
    assert scrubbed.count(REDACTED) == 5
    assert redactor(text) == scrubbed  # the redactor is the tracker's callable hook


def test_redactor_prefers_the_longest_match() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.scrub("xx abcdefgh yy") == f"xx {REDACTED} yy"


def test_redactor_ignores_empty_and_too_short_values() -> None:
    redactor = Redactor(["", "ab"])
    assert not redactor
    assert redactor.scrub("ab cd") == "ab cd"
    assert Redactor(["ab"], min_length=1).scrub("ab cd") == f"{REDACTED} cd"


def test_redactor_scrub_obj_walks_json_structures() -> None:
    redactor = Redactor.from_params({"api_key": SECRET}, patterns=PATTERNS)
    data = {"msg": f"key={SECRET}", "items": [SECRET, 1, None], SECRET: True}
    assert redactor.scrub_obj(data) == {
        "msg": f"key={REDACTED}",
        "items": [REDACTED, 1, None],
        REDACTED: True,
    }


def _executed_notebook(path: Path) -> None:
    """An executed notebook shaped like papermill's output, leaking the secret everywhere."""
    v4 = nbformat.v4
    params_cell = v4.new_code_cell(
        'db_password = ""\napi_key = ""', metadata={"tags": ["parameters"]}
    )
    injected = v4.new_code_cell(
        f'# Parameters\ndb_password = "{SECRET}"\napi_key = "xy"\nrows = 10\n',
        metadata={"tags": ["injected-parameters"]},
    )
    work = v4.new_code_cell(f"print(db_password)  # {SECRET}")
    work.outputs = [
        v4.new_output("stream", name="stdout", text=f"{SECRET}\n"),
        v4.new_output(
            "display_data",
            data={
                "text/plain": f"'{SECRET}'",
                "text/html": [f"<b>{SECRET}</b>"],
                "application/json": {"conn": f"postgres://u:{SECRET}@h"},
                "image/png": "iVBORw0KGgo=",
            },
        ),
        v4.new_output(
            "error",
            ename="ValueError",
            evalue=f"bad credential {SECRET}",
            traceback=[f"\x1b[0;31mValueError\x1b[0m: bad credential {SECRET}"],
        ),
    ]
    nb = v4.new_notebook(cells=[params_cell, injected, work])
    nb.metadata["papermill"] = {
        "parameters": {"db_password": SECRET, "api_key": "xy", "rows": 10},
        "default_parameters": {},
    }
    nbformat.write(nb, str(path))


def test_scrub_notebook_removes_secrets_from_every_cell_and_output(tmp_path: Path) -> None:
    src, dst = tmp_path / "step.ipynb", tmp_path / "logged" / "step.ipynb"
    _executed_notebook(src)
    original = src.read_bytes()
    params = {"db_password": SECRET, "api_key": "xy", "rows": 10}
    redactor = Redactor.from_params(params, patterns=PATTERNS)

    scrub_notebook(src, dst, redactor, patterns=PATTERNS)

    text = dst.read_text(encoding="utf-8")
    assert SECRET not in text
    assert src.read_bytes() == original  # the local run-folder copy is left as it was
    nb = nbformat.read(str(dst), as_version=4)
    nbformat.validate(nb)
    injected = nb.cells[1].source
    # The 2-character api_key is too short for the value scrubber; the name rule still hides it.
    assert f"db_password = {REDACTED!r}" in injected and f"api_key = {REDACTED!r}" in injected
    assert "rows = 10" in injected
    outputs = nb.cells[2].outputs
    assert outputs[0].text == f"{REDACTED}\n"
    assert outputs[1].data["image/png"] == "iVBORw0KGgo="  # binary payloads are left intact
    assert outputs[1].data["application/json"] == {"conn": f"postgres://u:{REDACTED}@h"}
    assert nb.metadata.papermill.parameters == {
        "db_password": REDACTED,
        "api_key": REDACTED,
        "rows": 10,
    }


def test_secret_patterns_must_be_a_list(tmp_path: Path) -> None:
    from toolkit.core.errors import ToolkitError
    from toolkit.core.settings import load_settings

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.toolkit]\nsecret_patterns = ["*pin*"]\n', encoding="utf-8")
    assert load_settings(tmp_path).secret_patterns == ("*pin*",)
    # A bare string would have become one-letter patterns that redact nothing.
    pyproject.write_text('[tool.toolkit]\nsecret_patterns = "*pin*"\n', encoding="utf-8")
    with pytest.raises(ToolkitError, match="secret_patterns must be a list"):
        load_settings(tmp_path)
