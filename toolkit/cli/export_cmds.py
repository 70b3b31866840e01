"""``toolkit export airflow``: hand a pipeline to another scheduler."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export_airflow(args: argparse.Namespace) -> int:
    from toolkit.commands.export_airflow import AirflowExport, write_dag

    output = Path(args.output)
    export = AirflowExport(
        spec=Path(args.pipeline), dag_id=args.dag_id, schedule=args.schedule, toolkit=args.toolkit
    )
    write_dag(export, output)
    print(f"wrote {output}: copy it into Airflow's dags folder")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser("export", help="export a pipeline for another scheduler")
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)
    airflow = targets.add_parser(
        "airflow",
        help="write an Airflow DAG file: one task per step (toolkit run --step) and a finish task",
    )
    airflow.add_argument("pipeline", help="path to a pipeline spec (pipelines/NAME.yaml)")
    airflow.add_argument("-o", "--output", required=True, help="the DAG file to write")
    airflow.add_argument("--dag-id", help="default: toolkit_<pipeline>")
    airflow.add_argument("--schedule", help="a cron expression or preset (default: none)")
    airflow.add_argument(
        "--toolkit", help="the toolkit command on the Airflow workers (default: this one)"
    )
    airflow.set_defaults(handler=cmd_export_airflow)
