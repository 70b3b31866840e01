"""Who triggered a run: Airflow, a CI system, Kubernetes, a wrapper naming itself, or a person
at a terminal. Only whitelisted variables are read: the environment also holds credentials.
"""

from __future__ import annotations

import os
import sys

from toolkit.core.envflags import env_marker

# Scheduler detection, most specific first. Each entry: (name, marker variable, variables kept).
_SCHEDULERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "airflow",
        "AIRFLOW_CTX_DAG_ID",
        (
            "AIRFLOW_CTX_DAG_ID",
            "AIRFLOW_CTX_TASK_ID",
            "AIRFLOW_CTX_DAG_RUN_ID",
            "AIRFLOW_CTX_EXECUTION_DATE",
            "AIRFLOW_CTX_LOGICAL_DATE",
            "AIRFLOW_CTX_TRY_NUMBER",
            "AIRFLOW_CTX_DAG_OWNER",
        ),
    ),
    (
        "github-actions",
        "GITHUB_ACTIONS",
        (
            "GITHUB_RUN_ID",
            "GITHUB_RUN_ATTEMPT",
            "GITHUB_WORKFLOW",
            "GITHUB_JOB",
            "GITHUB_REPOSITORY",
            "GITHUB_SHA",
            "GITHUB_REF",
            "GITHUB_EVENT_NAME",
            "GITHUB_SERVER_URL",
        ),
    ),
    (
        "gitlab-ci",
        "GITLAB_CI",
        ("CI_PIPELINE_ID", "CI_JOB_ID", "CI_JOB_URL", "CI_PROJECT_PATH", "CI_COMMIT_SHA"),
    ),
    ("jenkins", "JENKINS_URL", ("BUILD_ID", "BUILD_URL", "JOB_NAME", "BUILD_NUMBER")),
    ("kubernetes", "KUBERNETES_SERVICE_HOST", ("HOSTNAME",)),
)

#: Cron has no environment of its own; wrappers (cron lines, systemd timers, in-house schedulers)
#: describe themselves with ``TOOLKIT_CTX_*`` variables, e.g. ``TOOLKIT_CTX_SCHEDULER=cron``.
CONTEXT_PREFIX = "TOOLKIT_CTX_"


def scheduler_context(env: dict[str, str] | None = None) -> dict[str, str]:
    """Who triggered this run: ``{"scheduler": name, <whitelisted variables>...}``.

    ``scheduler`` is one of airflow, github-actions, gitlab-ci, jenkins, kubernetes, ci (any
    other system setting ``CI``), the value of ``TOOLKIT_CTX_SCHEDULER``, ``interactive``
    (a terminal) or ``unknown`` (no terminal and no marker: typically plain cron).
    """
    env = dict(os.environ if env is None else env)
    context: dict[str, str] = {}
    scheduler: str | None = None
    for name, marker, keep in _SCHEDULERS:
        if env.get(marker):
            scheduler = scheduler or name
            context.update({k: env[k] for k in keep if env.get(k)})
    for key, value in env.items():
        if key.startswith(CONTEXT_PREFIX) and value:
            context[key] = value
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        context["run_url"] = (
            f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/"
            f"{env['GITHUB_RUN_ID']}"
        )
    explicit = env.get(CONTEXT_PREFIX + "SCHEDULER")
    if explicit:
        scheduler = explicit
    elif scheduler is None and env_marker("CI", env):
        scheduler = "ci"
    elif scheduler is None:
        try:
            scheduler = "interactive" if sys.stdin is not None and sys.stdin.isatty() else None
        except (ValueError, OSError):  # a closed stdin
            scheduler = None
    context["scheduler"] = scheduler or "unknown"
    return dict(sorted(context.items()))
