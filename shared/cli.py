"""The ``hearth`` command: ``up | down | status | logs``.

Every expected failure prints one message naming the cause and the fix (exit 1); a traceback
only ever appears for a bug, and then after that message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.launcher import stack
from shared.launcher.supervisor import SupervisorError, log_path
from shared.logging import configure_logging
from shared.settings import SERVICES, HearthSettings, SettingsError, load_settings

app = typer.Typer(help="Hearth: the on-premise AI platform. Manage the local stack.", no_args_is_help=True)
# When piped (scripts, CI logs) rich would squeeze the table into 80 columns and cut names.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _settings() -> HearthSettings:
    # The CLI speaks to the user through its own messages; library logs only when they warn.
    configure_logging("hearth-cli", "WARNING", json=False)
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the whole stack, wait until every component is healthy, print the URLs."""
    settings = _settings()
    try:
        elapsed = stack.up(settings, report=lambda line: console.print(f"[dim]·[/dim] {line}"))
    except (stack.LaunchError, SupervisorError) as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt:
        _fail("interrupted; components already started keep running. `hearth down` stops them.")
        return
    console.print(f"[green]Hearth is up[/green] in {elapsed:.1f}s (state dir {settings.home})")
    for label, url in stack.urls(settings).items():
        console.print(f"  {label:<20} {url}")
    console.print("  Logs: `hearth logs <name>`  Status: `hearth status`  Stop: `hearth down`")


@app.command()
def down() -> None:
    """Stop every component (data is kept under HEARTH_HOME)."""
    settings = _settings()
    try:
        stopped = stack.down(settings, report=lambda line: console.print(f"[dim]·[/dim] {line}"))
    except stack.LaunchError as exc:
        _fail(str(exc))
        return
    console.print("Hearth is stopped." if stopped else f"Hearth is not running (state dir {settings.home}).")


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every component with version, URL, pid, uptime and health. Exit 1 unless all are healthy."""
    settings = _settings()
    try:
        rows = stack.status(settings)
    except stack.LaunchError as exc:
        _fail(str(exc))
        return
    healthy = all(r.health.status == "ok" for r in rows)
    if as_json:
        print(
            json.dumps(
                {"healthy": healthy, "home": str(settings.home), "components": [r.to_dict() for r in rows]}, indent=2
            )
        )
    else:
        table = Table(title=f"Hearth ({settings.home})")
        for col in ("component", "health", "version", "url", "pid", "uptime", "state", "detail"):
            table.add_column(col)
        colour = {"ok": "green", "degraded": "yellow", "down": "red"}
        for r in rows:
            table.add_row(
                r.name,
                f"[{colour[r.health.status]}]{r.health.status}[/]",
                r.health.version or "-",
                r.health.url or "-",
                str(r.pid or "-"),
                _uptime(r.uptime_s),
                r.state,
                (r.health.detail or "")[:60],
            )
        console.print(table)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def logs(
    name: Annotated[str | None, typer.Argument(help="Component name; omit for supervisord's own log.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many last lines to show.")] = 100,
) -> None:
    """Show a component's log file."""
    settings = _settings()
    known = ["nats", "postgres", "openbao", "temporal", "triton", *SERVICES]
    target = name or "supervisord"
    if name is not None and name not in known:
        _fail(f"unknown component {name!r}; choose one of: {', '.join(known)}")
    path = log_path(settings, target)
    if not path.exists():
        _fail(f"no log yet at {path}: has `hearth up` run with HEARTH_HOME={settings.home}?")
    cmd = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    try:
        raise typer.Exit(subprocess.call(cmd))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


if __name__ == "__main__":
    app()
