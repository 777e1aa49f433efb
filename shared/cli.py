"""The ``hearth`` command: ``up | down | status | logs``, ``models ...``, ``workflows ...``, ``keys ...``, ``nats ...``.

Every expected failure prints one message naming the cause and the fix (exit 1); a traceback
only ever appears for a bug, and then after that message.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.errors import HearthError
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


def _progress(line: str) -> None:
    """A launcher step as it happens (``up``, ``down``, backup and restore)."""
    console.print(f"[dim]·[/dim] {line}")


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start the whole stack, wait until every component is healthy, print the URLs."""
    settings = _settings()
    try:
        elapsed = stack.up(settings, report=_progress)
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
        stopped = stack.down(settings, report=_progress)
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
    known = ["nats", "postgres", "postgres-tls", "openbao", "temporal", "temporal-tls", "triton", *SERVICES]
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


backup_app = typer.Typer(help="Encrypted, consistent archives of the whole stack's state (see `hearth restore`).")
app.add_typer(backup_app, name="backup")
PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        exists=True,
        dir_okay=False,
        help="A file whose first line is the archive passphrase (else HEARTH_BACKUP_PASSPHRASE).",
    ),
]


@backup_app.command("create")
def backup_create(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Archive path; default ./hearth-<time>.hbk.")] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Archive the running stack: database, Temporal, OpenBao, blobs, dead letters, secrets, user models."""
    from shared.launcher import backup

    settings = _settings()
    target = out or Path(f"hearth-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.hbk")
    try:
        manifest = backup.create_backup(
            settings,
            target,
            backup.passphrase_from(passphrase_file),
            report=_progress,
        )
    except backup.BackupError as exc:
        _fail(str(exc))
        return
    console.print(f"[green]backup written[/green] {target} ({len(manifest.members)} files)", soft_wrap=True)
    console.print("  It holds OpenBao's unseal key: keep it, and its passphrase, as you would the machine.")


@backup_app.command("verify")
def backup_verify(
    archive: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The archive to check.")],
    passphrase_file: PassphraseFile = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decrypt an archive and check every file against its manifest; restores nothing."""
    from shared.launcher import backup

    try:
        manifest = backup.verify_backup(archive, backup.passphrase_from(passphrase_file))
    except backup.BackupError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(manifest.to_json().decode())
        return
    total = sum(m["bytes"] for m in manifest.members.values())
    console.print(
        f"[green]ok[/green] {archive}: taken {manifest.created_at}, schema {manifest.alembic_revision}, "
        f"{len(manifest.members)} files, {total / 1e6:.1f} MB, streams {manifest.streams}",
        soft_wrap=True,
    )


@app.command()
def restore(
    archive: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="An archive from `hearth backup create`.")
    ],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Bring an archive back as a running stack, into an empty state dir (HEARTH_HOME)."""
    from shared.launcher import backup

    settings = _settings()
    try:
        manifest = backup.restore_backup(
            settings,
            archive,
            backup.passphrase_from(passphrase_file),
            report=_progress,
        )
    except (backup.BackupError, stack.LaunchError, SupervisorError) as exc:
        _fail(str(exc))
        return
    console.print(
        f"[green]restored[/green] the archive of {manifest.created_at} into {settings.home}; Hearth is up",
        soft_wrap=True,
    )


tls_app = typer.Typer(help="The stack's TLS: the local CA and the server certificate (README: Transport encryption).")
app.add_typer(tls_app, name="tls")


@tls_app.command("status")
def tls_status() -> None:
    """Show the CA and server certificate: names, expiry, fingerprints."""
    from shared import tls

    settings = _settings()
    if not settings.tls:
        console.print("TLS is off (HEARTH_TLS=false): every connection is plain text")
        return
    for label, path in (("CA", settings.tls_ca_path), ("server", settings.tls_cert_path)):
        if not path.exists():
            _fail(f"no {label} certificate at {path} yet: `hearth up` makes it")
        info = tls.describe(path)
        lines = [
            f"{label} {info.path}",
            f"  subject  {info.subject}",
            f"  issuer   {info.issuer}",
            f"  expires  {info.not_after:%Y-%m-%d %H:%M} UTC",
            f"  sha256   {info.sha256}",  # no emoji: ":ab:" in a fingerprint is not a symbol
            *([f"  names    {', '.join(info.names)}"] if info.names else []),
        ]
        console.print("\n".join(lines), soft_wrap=True, markup=False, emoji=False, highlight=False)
    reason = tls.renewal_reason(settings.tls_cert_path, settings.tls_ca_path, *tls.server_names(settings))
    if reason and not settings.tls_cert_file:
        console.print(f"[yellow]the next `hearth up` reissues the server certificate: {reason}[/yellow]")


@tls_app.command("rotate")
def tls_rotate(
    ca: Annotated[
        bool, typer.Option("--ca", help="Also replace the local CA (clients must trust the new one).")
    ] = False,
) -> None:
    """Issue a new server certificate now and make the running stack serve it."""
    settings = _settings()
    try:
        stack.rotate_tls(settings, _progress, new_ca=ca)
    except (stack.LaunchError, SupervisorError) as exc:
        _fail(str(exc))


models_app = typer.Typer(help="Models served by Triton, through the gateway (uses the admin key by default).")
app.add_typer(models_app, name="models")


def _gateway(settings: HearthSettings, method: str, path: str, **request: Any) -> object:
    """Call the gateway with HEARTH_API_KEY, else the bootstrap admin key; problem details become errors.

    ``request`` goes to ``httpx.request`` (``files=``, ``data=``, ``params=``).
    """
    import httpx

    from shared.tls import http_verify

    key = os.environ.get("HEARTH_API_KEY")
    if not key:
        try:
            key = settings.read_secret("admin-api-key")
        except SettingsError as exc:
            _fail(f"no API key: set HEARTH_API_KEY or run `hearth up` first ({exc})")
    try:
        resp = httpx.request(
            method,
            f"{settings.gateway_url}{path}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=600,
            verify=http_verify(settings),
            **request,
        )
    except httpx.HTTPError as exc:
        _fail(f"the gateway at {settings.gateway_url} is not reachable ({exc}): is the stack up? `hearth status`")
    if resp.status_code >= 400:
        try:
            problem = resp.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            # A 400's field errors say what to change (`sensitivity`: one of public, internal, ...).
            fields = "".join(
                f"; {e.get('key') or 'body'}: {e.get('message')}"
                for e in problem.get("errors") or []
                if isinstance(e, dict) and e.get("message")
            )
            _fail(f"{problem.get('title', resp.status_code)}: {problem.get('detail', resp.text)}{fields}")
        else:
            _fail(f"the gateway answered {resp.status_code}: {resp.text[:200]}")
    return resp.json() if resp.content else None


def _print_models(models: list[dict[str, object]]) -> None:
    table = Table(title="Models")
    for col in ("model", "state", "versions", "requests", "errors", "last used", "cold start", "reason"):
        table.add_column(col)
    for m in models:
        cold = f"{m['cold_start_ms']:.0f} ms" if m.get("cold_start_ms") is not None else "-"
        table.add_row(
            str(m["name"]),
            str(m["state"] or "not loaded"),
            ",".join(str(v) for v in m.get("versions") or []) or "-",  # type: ignore[attr-defined]
            str(m["requests"]),
            str(m["errors"]),
            str(m.get("last_used") or "-"),
            cold,
            str(m.get("reason") or ""),
        )
    console.print(table)


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every model of the repository with its state."""
    models = _gateway(_settings(), "GET", "/v1/models")
    if as_json:
        print(json.dumps(models, indent=2))
    else:
        _print_models(models)  # type: ignore[arg-type]


@models_app.command("load")
def models_load(name: str) -> None:
    """Load a model into Triton."""
    model = _gateway(_settings(), "POST", f"/v1/models/{name}/load")
    _print_models([model])  # type: ignore[list-item]


@models_app.command("unload")
def models_unload(name: str) -> None:
    """Unload a model from Triton."""
    model = _gateway(_settings(), "POST", f"/v1/models/{name}/unload")
    _print_models([model])  # type: ignore[list-item]


@models_app.command("add-generator")
def models_add_generator(
    weights: Annotated[Path, typer.Option("--weights", help="A GGUF file (llama.cpp's format) of your model.")],
    name: Annotated[str, typer.Option("--name", help="The model's name in Triton.")] = "text_generator",
    n_ctx: Annotated[
        int | None, typer.Option("--n-ctx", min=256, help="Context tokens (prompt + answer); default 4096 or fewer.")
    ] = None,
    n_threads: Annotated[int, typer.Option("--threads", min=0, help="CPU threads; 0: llama.cpp's default.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model of that name.")] = False,
) -> None:
    """Serve a text-generation model from your own weights (generative answers in /v1/ask).

    Writes the model into the user model repository ($HEARTH_HOME/data/triton/models); nothing
    is copied or downloaded. It loads on its first request, like every model.
    """
    from shared.generators import GeneratorSetupError, write_generator

    settings = _settings()
    try:
        written = write_generator(
            settings.triton_user_model_repository,
            name,
            weights=weights,
            code_dir=settings.triton_model_repository.parent,
            triton_python=settings.triton_venv / "bin" / "python",
            n_ctx=n_ctx,
            n_threads=n_threads,
            force=force,
        )
    except GeneratorSetupError as exc:
        _fail(str(exc))
        return
    console.print(
        f"[green]{escape(written['name'])}[/green] written to {escape(written['path'])}: "
        f"{escape(str(written.get('architecture')))}, {written.get('size_mb')} MB, about {written['memory_mb']} MB "
        f"loaded with a context of {written['n_ctx']} tokens, chat template: "
        f"{'yes' if written.get('chat_template') else 'no'}. "
        f"It loads on its first request (or `hearth models load {escape(written['name'])}`).",
        soft_wrap=True,  # one line: the path stays whole for copying, whatever the terminal's width
    )


workflows_app = typer.Typer(help="Workflow definitions: check them offline, or list them through the gateway.")
app.add_typer(workflows_app, name="workflows")


@workflows_app.command("validate")
def workflows_validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Definition files; every configured directory when none.")
    ] = None,
) -> None:
    """Check definitions offline (no stack needed): YAML, keys, step types, models, references, triggers.

    Prints ``ok <file>: <workflows>`` per good file and ``<file>:<line>: <reason>`` per problem;
    exit 1 when there is any problem.
    """
    # workflows/ is imported only here: shared/ must not depend on it when the module loads.
    from workflows.definitions import DefinitionError, LoadContext, load_definitions, load_file, repository_models

    settings = _settings()
    good: dict[str, list[str]] = {}
    refused: dict[str, DefinitionError] = {}
    if files:
        ctx = LoadContext(models=repository_models(settings.triton_repositories))
        for path in files:
            try:
                good[str(path)] = [d.name for d in load_file(path, ctx)]
            except DefinitionError as exc:
                refused[str(path)] = exc
    else:
        loaded = load_definitions(settings)
        for name, file in loaded.files.items():
            good.setdefault(file, []).append(name)
        refused = loaded.errors
        if not good and not refused:
            dirs = ", ".join(str(d) for d in settings.workflow_directories)
            err.print(f"no workflow definition files (*.yaml, *.yml) in {dirs}", markup=False)
    for file, names in good.items():
        print(f"ok {file}: {', '.join(names)}")
    for error in refused.values():
        for problem in error.problems:
            print(problem)
    if refused:
        count = sum(len(e.problems) for e in refused.values())
        _fail(f"{count} problem{'s' if count > 1 else ''} in {len(refused)} file{'s' if len(refused) > 1 else ''}")


@workflows_app.command("list")
def workflows_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every definition with its active version and triggers, and the files refused (through the gateway)."""
    catalog = cast(dict[str, Any], _gateway(_settings(), "GET", "/v1/workflows"))
    if as_json:
        print(json.dumps(catalog, indent=2))
        return
    table = Table(title="Workflows")
    for col in ("workflow", "version", "hash", "triggers", "steps", "file"):
        table.add_column(col)
    for w in catalog["workflows"]:
        table.add_row(
            escape(str(w["name"])),
            str(w["active_version"]),
            str(w["hash"])[:12],
            escape(", ".join(str(t["subject"]) for t in w["triggers"]) or "-"),
            str(len(w["steps"])),
            escape(str(w["file"] or "-")),
        )
    console.print(table)
    for refused in catalog["refused"]:
        kept = ", ".join(refused["workflows"])
        note = f" ({kept} stay on their last good version)" if kept else ""
        err.print(f"refused {refused['file']}{note}:", markup=False)
        for p in refused["problems"]:
            where = f"{p['file']}:{p['line']}" if p.get("line") else p["file"]
            err.print(f"  {where}: {p['reason']}", markup=False, highlight=False)


docs_app = typer.Typer(help="Documents: submit files for processing and read what was found (through the gateway).")
app.add_typer(docs_app, name="docs")


def _print_document(doc: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(str(doc['id']))}[/bold]  {doc['status']}  {escape(str(doc.get('filename') or ''))}")
    if doc.get("error"):
        err.print(f"  failed: {doc['error'].get('detail')}", markup=False)
    classification = doc.get("classification") or {}
    if classification:
        console.print(
            f"  class: {classification['label']} ({classification['confidence']:.2f})  tags: "
            f"{escape(', '.join(doc.get('tags') or [])) or '-'}  language: {doc.get('language') or '-'}"
        )
    pages = doc.get("pages") or []
    if pages:
        sources = ", ".join(sorted({str(p["source"]) for p in pages}))
        console.print(f"  pages: {len(pages)} ({sources})")
    for name, found in (doc.get("entities") or {}).items():
        for entity in found:
            normalized = json.dumps(entity["normalized"], ensure_ascii=False)
            console.print(
                f"  {name}: {escape(str(entity['value']))} → {escape(normalized)} ({entity['confidence']:.2f})",
                highlight=False,
            )
    for warning in doc.get("warnings") or []:
        err.print(f"  warning: {warning}", markup=False)


@docs_app.command("add")
def docs_add(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="PDF, PNG, JPEG or TIFF.")],
    *,
    source_system: Annotated[str, typer.Option(help="The system the document comes from.")] = "cli",
    external_id: Annotated[str | None, typer.Option(help="The document's id in that system.")] = None,
    sensitivity: Annotated[
        str | None,
        typer.Option(help="public, internal (the default), confidential or secret; at most the key's clearance."),
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the result (0: return at once).")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Submit a document; it runs through the document_processing workflow (watch it in the Temporal UI)."""
    import time

    settings = _settings()
    form = {"source_system": source_system, **({"external_id": external_id} if external_id else {})}
    if sensitivity is not None:
        form["sensitivity"] = sensitivity  # checked by the gateway: a 400 names the allowed values
    with file.open("rb") as handle:
        submitted = cast(
            dict[str, Any],
            _gateway(settings, "POST", "/v1/documents", files={"file": (file.name, handle)}, data=form),
        )
    doc_id = submitted["id"]
    if not as_json:
        console.print(f"submitted {escape(file.name)} as {doc_id} (run {submitted['run_id']})")
    doc = submitted
    deadline = time.monotonic() + wait
    while wait > 0 and doc.get("status") == "processing" and time.monotonic() < deadline:
        time.sleep(1.0)
        doc = cast(dict[str, Any], _gateway(settings, "GET", f"/v1/documents/{doc_id}"))
    if as_json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif doc.get("status") != "processing" and "pages" in doc:
        _print_document(doc)
    if doc.get("status") == "failed":
        raise typer.Exit(1)


@docs_app.command("get")
def docs_get(doc_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One document: status, class, tags, entities."""
    doc = cast(dict[str, Any], _gateway(_settings(), "GET", f"/v1/documents/{doc_id}"))
    if as_json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_document(doc)


@docs_app.command("list")
def docs_list(
    status: Annotated[str | None, typer.Option(help="processing, processed or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Documents, newest first."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    docs = cast(list[dict[str, Any]], _gateway(_settings(), "GET", "/v1/documents", params=params))
    if as_json:
        print(json.dumps(docs, indent=2, ensure_ascii=False))
        return
    table = Table(title="Documents")
    for col in ("id", "status", "file", "source", "class", "tags", "created"):
        table.add_column(col)
    for d in docs:
        table.add_row(
            str(d["id"]),
            str(d["status"]),
            escape(str(d.get("filename") or "-")),
            escape(str(d["source_system"])),
            str(d.get("doc_class") or "-"),
            escape(", ".join(d.get("tags") or []) or "-"),
            str(d["created_at"])[:19],
        )
    console.print(table)


alerts_app = typer.Typer(help="Alert rules and alerts (rules in infra/alerts/*.yaml; alerts through the gateway).")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("check")
def alerts_check(
    directories: Annotated[
        list[Path] | None,
        typer.Argument(help="Rule directories (default: the stack's, as the telemetry service reads)."),
    ] = None,
) -> None:
    """Validate alert rule files without deploying them; exit 1 with every problem found."""
    from services.telemetry.rules import RuleError, load_rules
    from services.telemetry.settings import TelemetrySettings

    dirs = directories or TelemetrySettings().alert_directories
    try:
        rules = load_rules(dirs)
    except RuleError as exc:
        for problem in exc.problems:
            console.print(f"[red]✗[/red] {escape(problem)}")
        raise typer.Exit(1) from None
    for rule in rules:
        console.print(f"[green]✓[/green] {rule.name} ({rule.severity}): {escape(str(rule.expr))}")
    console.print(f"{len(rules)} rules in {', '.join(str(d) for d in dirs)}")


@alerts_app.command("list")
def alerts_list(
    state: Annotated[str | None, typer.Option(help="pending, firing or resolved.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts (pending, firing, resolved in the last day) and the active silences."""
    params = {"state": state} if state else {}
    answer = cast(dict[str, Any], _gateway(_settings(), "GET", "/v1/alerts", params=params))
    if as_json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Alerts ({answer['rules']} rules)")
    for col in ("alert", "severity", "state", "labels", "summary", "since"):
        table.add_column(col)
    for a in answer["alerts"]:
        labels = {k: v for k, v in a["labels"].items() if k not in ("alertname", "severity")}
        state_text = a["state"] + (" (silenced)" if a["silenced"] else "")
        table.add_row(
            escape(a["alertname"]),
            a["severity"],
            state_text,
            escape(", ".join(f"{k}={v}" for k, v in labels.items())),
            escape(a["summary"]),
            datetime.fromtimestamp(a["started_at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
    for problem in answer.get("rule_errors", []):
        console.print(f"[red]rule refused:[/red] {escape(problem)}")


audit_app = typer.Typer(help="The audit log's integrity (through the gateway, with the admin key).")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first entry altered or deleted."""
    report = cast(dict[str, Any], _gateway(_settings(), "GET", "/v1/audit/verify"))
    if as_json:
        print(json.dumps(report, indent=2))
    elif report["ok"]:
        console.print(
            f"[green]ok[/green] {report['entries']} entries chained; head {report['head_id']} {report['head_hash']}",
            soft_wrap=True,
        )
    else:
        err.print(
            f"[red]broken[/red] at entry {report['first_bad_id']}: {report['reason']} "
            f"({report['entries']} entries before it verified)",
            soft_wrap=True,
        )
    if not report["ok"]:
        raise typer.Exit(1)


governance_app = typer.Typer(help="The data lifecycle: tiers, legal holds, schedules (through the gateway).")
app.add_typer(governance_app, name="governance")


@governance_app.command("lifecycle")
def governance_lifecycle(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Documents and bytes per tier (hot, cold, purged) per tenant, legal holds, next schedule runs."""
    report = cast(dict[str, Any], _gateway(_settings(), "GET", "/v1/governance/lifecycle"))
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    table = Table(title="Documents per tier")
    for col in ("tenant", "hot", "cold", "cold on disk", "purged", "legal hold"):
        table.add_column(col)
    for row in [*report["tenants"], report["totals"]]:
        hot, cold, purged = row["hot"], row["cold"], row["purged"]
        table.add_row(
            escape(row["tenant"] if row["tenant"] != "*" else "all"),
            f"{hot['documents']} ({hot['bytes']} B)",
            f"{cold['documents']} ({cold['bytes']} B)",
            f"{cold.get('stored_bytes') or 0} B",
            str(purged["documents"]),
            str(row["legal_hold"]),
        )
    console.print(table)
    schedules = Table(title="Schedules")
    for col in ("schedule", "workflow", "next run", "last run", "paused"):
        schedules.add_column(col)
    for item in report["schedules"]:
        when = (str(item["next_run"] or "-"), str(item["last_run"] or "-"))
        schedules.add_row(item["id"], item["workflow"], *when, str(item["paused"]))
    console.print(schedules)
    if report.get("schedules_error"):
        err.print(f"[yellow]schedules unreadable:[/yellow] {escape(report['schedules_error'])}")


keys_app = typer.Typer(help="API keys: create, list, rotate and revoke (through the gateway, with the admin key).")
app.add_typer(keys_app, name="keys")


def _when(value: object) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _print_new_key(created: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(created, indent=2))
        return
    console.print(
        f"{escape(created['role'])} key {escape(created['name'])!r} of tenant {escape(created['tenant'])} "
        f"(prefix {created['prefix']}, expires {_when(created['expires_at'])}). "
        "Store it now: it is not shown again."
    )
    print(created["key"])  # plain, alone on its line: easy to copy or capture


@keys_app.command("create")
def keys_create(
    name: str,
    *,
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    tenant: Annotated[str, typer.Option(help="The tenant whose data the key reaches.")] = "default",
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d or 12h (default: no expiry).")] = None,
    clearance: Annotated[
        str | None,
        typer.Option(help="Most sensitive documents it may read: public, internal (default), confidential, secret."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key; it is printed once."""
    body: dict[str, Any] = {"name": name, "role": role, "tenant": tenant}
    if expires_in:
        body["expires_in"] = expires_in
    if clearance:
        body["clearance"] = clearance
    _print_new_key(cast(dict[str, Any], _gateway(_settings(), "POST", "/v1/keys", json=body)), as_json)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Revoked and expired keys too.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys with their state and last use (never the keys themselves)."""
    keys = cast(
        list[dict[str, Any]], _gateway(_settings(), "GET", "/v1/keys", params={"tenant": tenant} if tenant else {})
    )
    if not show_all:
        keys = [k for k in keys if k["state"] in ("active", "rotated")]
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    table = Table(title="API keys")
    columns: tuple[str, ...] = ("prefix", "name", "role", "tenant", "clearance", "state", "created", "expires")
    columns += ("last used",)
    columns += ("replaced by",)
    for col in columns:
        table.add_column(col)
    for k in keys:
        table.add_row(
            k["prefix"],
            escape(k["name"]),
            k["role"],
            escape(k["tenant"]),
            k.get("clearance", "-"),
            k["state"],
            _when(k["created_at"]),
            _when(k["expires_at"]),
            _when(k["last_used_at"]),
            k["replaced_by"] or "-",
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    prefix: str,
    grace: Annotated[str, typer.Option(help="How long the old key keeps working (0s to 30d).")] = "24h",
    expires_in: Annotated[str | None, typer.Option(help="The new key's lifetime (default: the old key's).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A replacement for a key (same name, role, tenant); the old one works for the grace period."""
    body: dict[str, Any] = {"grace": grace}
    if expires_in:
        body["expires_in"] = expires_in
    created = cast(dict[str, Any], _gateway(_settings(), "POST", f"/v1/keys/{prefix}/rotate", json=body))
    _print_new_key(created, as_json)


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke a key at once."""
    _gateway(_settings(), "DELETE", f"/v1/keys/{prefix}")
    console.print(f"revoked {prefix}")


authz_app = typer.Typer(
    help="Access control: roles, role assignments and route policies per tenant domain (through the gateway). "
    "The platform admin manages every domain (* is every tenant); a tenant admin its own."
)
app.add_typer(authz_app, name="authz")
policies_app = typer.Typer(help="Route policies: a role may use methods on a resource (a path pattern) in a domain.")
authz_app.add_typer(policies_app, name="policies")
assignments_app = typer.Typer(help="Role assignments: a key (key:<prefix>) or a role has a role in a domain.")
authz_app.add_typer(assignments_app, name="assignments")
roles_app = typer.Typer(help="Roles: their policies and the roles they include.")
authz_app.add_typer(roles_app, name="roles")

_Domain = Annotated[str | None, typer.Option(help="The tenant, or * for every tenant (default: yours; admin: *).")]


def _params(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


def _print_policies(policies: list[dict[str, Any]]) -> None:
    table = Table(title="Policies")
    for col in ("role", "domain", "resource", "methods"):
        table.add_column(col)
    for p in policies:
        table.add_row(escape(p["role"]), escape(p["domain"]), escape(p["resource"]), escape(p["methods"]))
    console.print(table)


@policies_app.command("list")
def policies_list(
    domain: _Domain = None,
    role: Annotated[str | None, typer.Option(help="Only this role's.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Route policies you may see (every domain for the admin)."""
    params = _params(domain=domain, role=role)
    found = cast(list[dict[str, Any]], _gateway(_settings(), "GET", "/v1/authz/policies", params=params))
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        _print_policies(found)


@policies_app.command("add")
def policies_add(role: str, resource: str, methods: str, domain: _Domain = None) -> None:
    """Let ROLE use METHODS (GET|POST, or .*) on RESOURCE (e.g. /v1/documents/:id) in a domain."""
    body = {"role": role, "resource": resource, "methods": methods, "domain": domain}
    added = cast(dict[str, Any], _gateway(_settings(), "POST", "/v1/authz/policies", json=body))
    console.print(f"added: {escape(', '.join(added[k] for k in ('role', 'domain', 'resource', 'methods')))}")


@policies_app.command("remove")
def policies_remove(role: str, resource: str, methods: str, domain: _Domain = None) -> None:
    """Remove a route policy (as listed)."""
    params = _params(role=role, resource=resource, methods=methods, domain=domain)
    _gateway(_settings(), "DELETE", "/v1/authz/policies", params=params)
    console.print(f"removed: {escape(', '.join(v for v in (role, domain or '(default domain)', resource, methods)))}")


@assignments_app.command("list")
def assignments_list(
    domain: _Domain = None,
    member: Annotated[str | None, typer.Option(help="Only this member's (key:<prefix> or a role).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Role assignments you may see."""
    found = cast(
        list[dict[str, Any]],
        _gateway(_settings(), "GET", "/v1/authz/assignments", params=_params(domain=domain, member=member)),
    )
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(title="Assignments")
    for col in ("member", "role", "domain"):
        table.add_column(col)
    for a in found:
        table.add_row(escape(a["member"]), escape(a["role"]), escape(a["domain"]))
    console.print(table)


@assignments_app.command("add")
def assignments_add(member: str, role: str, domain: _Domain = None) -> None:
    """Give MEMBER (key:<prefix>, or a role) ROLE in a domain (a key: in its own tenant)."""
    body = {"member": member, "role": role, "domain": domain}
    added = cast(dict[str, Any], _gateway(_settings(), "POST", "/v1/authz/assignments", json=body))
    console.print(f"{escape(added['member'])} has role {escape(added['role'])} in {escape(added['domain'])}")


@assignments_app.command("remove")
def assignments_remove(member: str, role: str, domain: _Domain = None) -> None:
    """Take ROLE from MEMBER in a domain."""
    _gateway(_settings(), "DELETE", "/v1/authz/assignments", params=_params(member=member, role=role, domain=domain))
    console.print(f"{escape(member)} no longer has role {escape(role)}")


@roles_app.command("list")
def roles_list(domain: _Domain = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Roles per domain, with their policies and the roles they include."""
    found = cast(list[dict[str, Any]], _gateway(_settings(), "GET", "/v1/authz/roles", params=_params(domain=domain)))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(title="Roles")
    for col in ("role", "domain", "includes", "policies"):
        table.add_column(col)
    for r in found:
        grants = "\n".join(f"{p['methods']} {p['resource']}" for p in r["policies"]) or "-"
        table.add_row(escape(r["name"]), escape(r["domain"]), escape(", ".join(r["inherits"]) or "-"), escape(grants))
    console.print(table)


@roles_app.command("add")
def roles_add(
    name: str,
    permission: Annotated[
        list[str] | None, typer.Option("--permission", "-p", help="METHODS:RESOURCE, e.g. GET|POST:/v1/documents.")
    ] = None,
    inherits: Annotated[list[str] | None, typer.Option("--inherits", help="A role this one includes.")] = None,
    domain: _Domain = None,
) -> None:
    """Create role NAME with its permissions and the roles it includes."""
    permissions = []
    for item in permission or []:
        methods, sep, resource = item.partition(":")
        if not sep:
            _fail(f"--permission {item!r}: write METHODS:RESOURCE, e.g. GET:/v1/documents")
        permissions.append({"methods": methods, "resource": resource})
    body = {"name": name, "domain": domain, "permissions": permissions, "inherits": inherits or []}
    role = cast(dict[str, Any], _gateway(_settings(), "POST", "/v1/authz/roles", json=body))
    console.print(f"role {escape(role['name'])} in {escape(role['domain'])}: {len(role['policies'])} policies")


@roles_app.command("remove")
def roles_remove(name: str, domain: _Domain = None) -> None:
    """Remove role NAME from a domain: its policies and every assignment of it."""
    _gateway(_settings(), "DELETE", f"/v1/authz/roles/{name}", params=_params(domain=domain))
    console.print(f"removed role {escape(name)}")


nats_app = typer.Typer(help="NATS users: line-of-business publishers, and the permissions each user has.")
app.add_typer(nats_app, name="nats")
publishers_app = typer.Typer(help="Line-of-business publishers: publish on hearth.ingest.>, read their results.")
nats_app.add_typer(publishers_app, name="publishers")


def _apply_nats(settings: HearthSettings) -> str:
    from shared import natsauth

    if not settings.nats_auth:
        return "HEARTH_NATS_AUTH is false: this server takes no users, the change has no effect there"
    if natsauth.reload(settings):
        return "nats-server reloaded its config"
    return "NATS is not running: the change applies at the next `hearth up`"


@publishers_app.command("create")
def publishers_create(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create a publisher's NATS user; its password is printed once."""
    from shared import natsauth

    settings = _settings()
    try:
        publisher, password = natsauth.create_publisher(settings, name)
    except ValueError as exc:
        _fail(str(exc))
        return
    applied = _apply_nats(settings)
    if as_json:
        body = {"name": name, "user": publisher.user, "password": password, "url": settings.nats_url}
        print(json.dumps({**body, "inbox_prefix": natsauth.inbox_prefix(publisher.user)}, indent=2))
        return
    console.print(
        f"publisher {escape(name)}: NATS user {publisher.user}, inbox prefix "
        f"{natsauth.inbox_prefix(publisher.user)}, server {settings.nats_url} ({applied}). "
        "Store the password now: it is not shown again."
    )
    print(password)


@publishers_app.command("list")
def publishers_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered publishers (never their passwords)."""
    from shared import natsauth

    publishers = natsauth.list_publishers(_settings())
    if as_json:
        rows = [{"name": p.name, "user": p.user, "created_at": p.created_at.isoformat()} for p in publishers]
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="NATS publishers")
    for col in ("name", "user", "created"):
        table.add_column(col)
    for p in publishers:
        table.add_row(escape(p.name), p.user, _when(p.created_at.isoformat()))
    console.print(table)


@publishers_app.command("revoke")
def publishers_revoke(name: str) -> None:
    """Remove a publisher; the server drops its connections when it reloads."""
    from shared import natsauth

    settings = _settings()
    try:
        natsauth.revoke_publisher(settings, name)
    except KeyError:
        _fail(f"no publisher {name!r} (`hearth nats publishers list` shows them)")
        return
    console.print(f"revoked {escape(name)} ({_apply_nats(settings)})")


@nats_app.command("permissions")
def nats_permissions(user: str) -> None:
    """What a NATS user may publish and subscribe to: a service, or a publisher as lob-<name>."""
    from shared import natsauth

    try:
        if user in SERVICES:
            perms = natsauth.service_permissions(user)
        elif user.startswith(natsauth.PUBLISHER_PREFIX):
            perms = natsauth.publisher_permissions(user)
        else:
            _fail(f"{user!r} is neither a service ({', '.join(SERVICES)}) nor a publisher (lob-<name>)")
            return
    except ValueError as exc:
        _fail(str(exc))
        return
    print(json.dumps(perms.conf(), indent=2))


db_app = typer.Typer(help="Direct database access for analysts: read-only roles under row-level security.")
app.add_typer(db_app, name="db")
role_app = typer.Typer(help="Analyst roles: SELECT on chosen tables, their tenants' rows only (needs the state dir).")
db_app.add_typer(role_app, name="role")


@role_app.command("create")
def db_role_create(
    name: str,
    *,
    tenant: Annotated[list[str], typer.Option("--tenant", help="A tenant whose rows it sees (repeat for more).")],
    table: Annotated[
        list[str] | None, typer.Option("--table", help="A table it may SELECT (repeat; default processed_docs).")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file (default: generate one, printed once).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a read-only login role for an analyst, limited to its tenants by row-level security."""
    from shared.db import roles

    settings = _settings()
    password = password_file.read_text().strip() if password_file else None
    try:
        tables = table or list(roles.DEFAULT_TABLES)
        made = asyncio.run(roles.create_role(settings, name, tenant, tables, password=password))
    except HearthError as exc:
        _fail(exc.detail)
        return
    dsn = f"postgresql://{made.name}@{settings.postgres_client_host}:{settings.postgres_port}/{settings.postgres_db}"
    if as_json:
        body = {"name": made.name, "tenants": made.tenants, "tables": made.tables, "dsn": dsn}
        print(json.dumps({**body, **({"password": made.password} if made.password else {})}, indent=2))
        return
    console.print(
        f"role {made.name}: SELECT on {', '.join(made.tables)}, rows of {', '.join(made.tenants)} only; connect "
        f"with {dsn}" + (". Store the password now: it is not shown again." if made.password else ""),
        soft_wrap=True,
    )
    if made.password:
        print(made.password)


@role_app.command("list")
def db_role_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Analyst roles made by `hearth db role create`: their tenants and tables."""
    from shared.db import roles

    found = asyncio.run(roles.list_roles(_settings()))
    if as_json:
        print(json.dumps([{"name": r.name, "tenants": r.tenants, "tables": r.tables} for r in found], indent=2))
        return
    table = Table(title="Analyst roles")
    for col in ("name", "tenants", "tables"):
        table.add_column(col)
    for r in found:
        table.add_row(r.name, ", ".join(r.tenants), ", ".join(r.tables))
    console.print(table)


@role_app.command("drop")
def db_role_drop(name: str) -> None:
    """Drop an analyst role with its policies and grants."""
    from shared.db import roles

    try:
        asyncio.run(roles.drop_role(_settings(), name))
    except HearthError as exc:
        _fail(exc.detail)
        return
    console.print(f"dropped role {name}")


if __name__ == "__main__":
    app()
