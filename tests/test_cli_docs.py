"""docs/cli.md documents every command and every option the CLI has."""

from pathlib import Path

import click

from seqlm.cli import main

CLI_DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_command_and_option_is_in_docs_cli_md():
    ctx = click.Context(main)
    missing = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        if name not in main.builtin_commands:
            continue  # a command a plugin added; plugins document their own
        if f"## seqlm {name}" not in CLI_DOC:
            missing.append(f"section for `seqlm {name}`")
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt not in CLI_DOC:
                    missing.append(f"seqlm {name} {opt}")
    assert not missing, f"docs/cli.md lacks: {', '.join(missing)} (regenerate it)"
