"""Reading run folders back: ``seqlm runs`` and ``seqlm compare``."""

from __future__ import annotations

from typing import Any

import click

from seqlm.cli.group import main
from seqlm.runs.strict_json import dumps


@main.command()
@click.argument("folder", metavar="[DIR]", type=click.Path(), default="runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(folder: str, as_json: bool) -> None:
    """List the runs in runs/ (or DIR) with their figures and status.

    Status: finished, running, stopped (by Ctrl-C or a stop signal; resume it) or
    failed, as the run folder's status.json records it.
    """
    from pathlib import Path

    from seqlm.runs.listing import find_runs, runs_table

    path = Path(folder)
    if folder == "runs" and not path.exists():  # the default before any run: no error
        records, empty = [], "No runs yet: runs/ does not exist here (seqlm run creates it)."
    else:
        records = find_runs(path)
        empty = f"No runs in {folder} (a run folder holds status.json or metrics.jsonl)."
    if as_json:
        click.echo(dumps([r.to_dict() for r in records]))
    elif not records:
        click.echo(empty, err=True)
    else:
        from rich.console import Console

        Console().print(runs_table(records, f"seqlm runs in {folder}"))
    _notes(records)


def _notes(records: list[Any]) -> None:
    """One line on stderr for each run folder with something to remark (an older run)."""
    for record in records:
        if record.note:
            click.echo(f"note: {record.name}: {record.note}", err=True)


@main.command()
@click.argument("run_dirs", metavar="RUN RUN...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="compare.png", show_default=True, type=click.Path(),
              help="Picture of the runs' curves (.png, .svg or .pdf); an existing file "
              "is replaced only if seqlm compare made it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare(run_dirs: tuple[str, ...], output: str, as_json: bool) -> None:
    """Compare runs: their curves in one picture, their figures in a table.

    Each run is labelled by the settings in which the runs differ.
    """
    from pathlib import Path

    from seqlm.runs.compare import (
        check_output,
        comparison,
        comparison_table,
        load_runs,
        plot_runs,
        tokenization_note,
    )

    path = Path(output)
    check_output(path)
    records = load_runs(run_dirs)
    result = comparison(records)
    plot_runs(records, [row["label"] for row in result["runs"]], path)
    result["plot"] = str(path)
    _notes(records)
    note = tokenization_note(records)
    if note:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(dumps(result))
        return
    from rich.console import Console

    Console().print(comparison_table(result))
    if not result["differing_settings"]:
        click.echo("The runs have the same settings.")
    click.echo(f"plot: {path}")
