"""`grounded shadow report`: how the candidate model compares with the one users got."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from grounded.gateway.shadow import report
from grounded.settings import load_settings

shadow_app = typer.Typer(no_args_is_help=True, help="Shadow traffic to a candidate model.")

COLUMNS = (
    ("primary_model", "primary"),
    ("shadow_model", "shadow"),
    ("mirrored", "mirrored"),
    ("errors", "errors"),
    ("primary_total_ms_p50", "primary p50 ms"),
    ("shadow_total_ms_p50", "shadow p50 ms"),
    ("shadow_total_ms_p95", "shadow p95 ms"),
    ("length_ratio", "length ratio"),
    ("agreement_mean", "agreement"),
    ("agreement_p10", "agreement p10"),
)


@shadow_app.command("report")
def shadow_report(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Index location (env GROUNDED_DATA_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON.")] = False,
) -> None:
    """Summarise DATA_DIR/logs/shadow.jsonl: latency, length and agreement per model pair."""
    settings = load_settings(**({"data_dir": data_dir} if data_dir else {}))
    rows = report(settings.data_dir / "logs" / "shadow.jsonl")
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        Console(stderr=True).print("no shadow traffic recorded (set gateway.shadow.model/share)")
        return
    table = Table(title="Shadow traffic")
    for _, title in COLUMNS:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(*("-" if row[key] is None else str(row[key]) for key, _ in COLUMNS))
    Console().print(table)
