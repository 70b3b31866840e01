"""Pages and text built from result objects: one Jinja2 environment, autoescaped.

Templates live in ``toolkit/reports/templates``. Every page is self-contained: inline CSS, no
scripts, no external assets, so it opens offline and from an MLflow artifact view alike.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=1)
def environment() -> Any:
    """The shared Jinja2 environment (autoescape on for every template)."""
    import jinja2  # lazy: only pages need it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("toolkit.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(template: str, **context: Any) -> str:
    return str(environment().get_template(template).render(**context))


def keep_compiled_templates(directory: Path) -> None:
    """Keep compiled templates in ``directory`` between processes.

    Compiling the run report's templates costs ~0.3 s per process, most of a no-change re-run.
    Jinja's own bytecode cache re-checks each template's source checksum, so an edited template
    is compiled again; the folder is per Jinja version, since compiled code calls its runtime.
    A cache that cannot be read or written only costs the compile.
    """
    env = environment()
    if env.bytecode_cache is None:
        env.bytecode_cache = _bytecode_cache(directory)


def _bytecode_cache(directory: Path) -> Any:
    import jinja2

    class TolerantCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # unreadable or stale: compile it again
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(Exception):  # a read-only or full disk
                Path(self.directory).mkdir(parents=True, exist_ok=True)
                super().dump_bytecode(bucket)

    return TolerantCache(str(directory / f"jinja2-{jinja2.__version__}"))
