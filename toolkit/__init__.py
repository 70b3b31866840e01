"""toolkit: turn demo notebooks into reproducible, gated, tracked production jobs.

Importing the package is cheap on purpose: notebooks import ``toolkit.step`` and the CLI
imports heavy engines (papermill, Great Expectations, MLflow) only when a command needs them.
"""

__version__ = "0.1.0"
