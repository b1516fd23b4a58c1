"""Commands about plugins: ``seqlm plugins``, ``seqlm list`` and ``seqlm new-plugin``."""

from __future__ import annotations

import json
import os
import shlex

import click

from seqlm.cli.group import main
from seqlm.errors import SeqlmError, UsageError
from seqlm.plugins.manager import KINDS, get_plugins


def _escape(text: str) -> str:
    """Escape rich markup in text that comes from plugins (names, messages)."""
    from rich.markup import escape

    return escape(text)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the plugins: where each comes from, what it registered (commands included),
    what was refused, and its status."""
    if not get_plugins().commands_added:  # plugins loaded afresh in this process
        get_plugins().add_commands(main, main.builtin_commands)
    rows = [info.to_dict() for info in get_plugins().info.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="seqlm plugins", title_justify="left")
    for column in ("Plugin", "Distribution", "Version", "Registered", "Status"):
        table.add_column(column, overflow="fold")  # a failure's reason is shown whole
    for row in rows:
        registered = "; ".join(
            f"{kind}s: {', '.join(names)}" for kind, names in row["registered"].items()
        )
        if not registered and row["hooks"] and row["status"] == "ok":
            registered = ", ".join(row["hooks"])
        status = "ok" if row["status"] == "ok" else f"[red]{_escape(row['status'])}[/red]"
        if row["refused"]:
            status += "".join(f"\n[yellow]{_escape(line)}[/yellow]" for line in row["refused"])
        table.add_row(_escape(row["name"]), _escape(row["distribution"]), _escape(row["version"]),
                      _escape(registered), status)
    Console().print(table)



@main.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder to write the package folder NAME in.")
def new_plugin(name: str, parent: str) -> None:
    """Write a ready plugin package ./NAME/: an example cell, sampler, tokenizer and
    command, their entry point, tests using seqlm.testing, and a README."""
    from pathlib import Path

    from seqlm.plugins.scaffold import plugin_names, write_plugin

    names = plugin_names(name)
    _refuse_names_in_use(name, names, click.get_current_context().find_root().command)
    root = write_plugin(name, Path(parent))
    click.echo(f"wrote {root}/ with cell {names['cell']}, sampler {names['sampler']}, "
               f"tokenizer {names['tokenizer']} and command {names['command']}.\n"
               # Quoted as a shell needs them: [test] is a pattern, a folder may hold a space.
               f"Next: pip install -e {shlex.quote(f'{root}[test]')} && seqlm plugins && "
               f"python -m pytest {shlex.quote(f'{root}/tests')}")


def _refuse_names_in_use(name: str, names: dict[str, str], cli: click.Command) -> None:
    """Refuse a plugin name whose components or command an installed plugin already
    registers (``foo`` and ``seqlm-foo`` both give ``foo-cell``): installed side by side,
    neither could be chosen."""
    plugins = get_plugins()
    taken = [f"{kind} {names[kind]!r}" for kind in ("cell", "sampler", "tokenizer")
             if names[kind] in plugins.choices(kind)]
    commands = cli.list_commands(click.get_current_context()) if isinstance(
        cli, click.Group) else []
    if names["command"] in commands:
        taken.append(f"command {names['command']!r}")
    if taken:
        raise UsageError(f"new-plugin {name!r}: {', '.join(taken)} would be registered twice: "
                         "an installed plugin registers that name already (seqlm plugins "
                         f"lists it); choose another name, such as seqlm-{names['short']}-2")


@main.command("list")
@click.argument("kind", metavar="KIND", type=click.Choice([f"{k}s" for k in KINDS]))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_components(kind: str, as_json: bool) -> None:
    """List the available cells, samplers, tokenizers, trainers or callbacks.

    Each name comes with its class, the plugin that registered it and the first line of
    its docstring. Listing imports the classes (and so torch).
    """
    plugins_ = get_plugins()
    rows = []
    for name, impls in sorted(plugins_.implementations(kind[:-1]).items()):
        for impl in impls:
            try:
                doc = (impl.load().__doc__ or "").strip().splitlines()
                description, status = (doc[0] if doc else ""), "ok"
            except SeqlmError as error:
                description, status = "", f"failed: {error}"
            rows.append({"name": name, "class": impl.qualified_name,
                         "plugin": plugins_.info[impl.plugin].describe(),
                         "description": description, "status": status})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        limited = os.environ.get("SEQLM_LOAD_PLUGINS") is not None
        click.echo(f"no {kind} are loaded: SEQLM_LOAD_PLUGINS names the plugins to load"
                   if limited else
                   f"no {kind} are installed (seqlm plugins lists the plugins loaded)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"seqlm {kind}", title_justify="left")
    for column in ("Name", "Class", "Plugin", "Description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        description = (_escape(row["description"]) if row["status"] == "ok"
                       else f"[red]{_escape(row['status'])}[/red]")
        table.add_row(_escape(row["name"]), _escape(row["class"]), _escape(row["plugin"]),
                      description)
    Console().print(table)
