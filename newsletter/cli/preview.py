"""`newsletter preview` and `send-test`: a template on real data."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.cli.common import (
    ConfigOption,
    app,
    console,
    err_console,
    fail,
    print_json,
    settings_or_exit,
)


@app.command("preview")
def preview_command(
    template: str = typer.Argument(..., help="Template name (database or shipped) or folder."),
    subscriber: str | None = typer.Option(
        None, help="Render for this subscriber (id, email or external key)."
    ),
    out: Path | None = typer.Option(None, help="Write the HTML part to this .html file."),
    eml: Path | None = typer.Option(None, help="Write the whole message to this .eml file."),
    config: Path | None = ConfigOption,
) -> None:
    """Render TEMPLATE strictly on real data (sample data where the database has none)."""
    from newsletter.db import now_utc
    from newsletter.render.compile import CompileError
    from newsletter.render.preview import (
        PreviewError,
        preview,
        preview_engine,
        resolve_subscriber,
    )
    from newsletter.render.sandbox import RenderError

    settings = settings_or_exit(config)
    engine = preview_engine(settings)
    try:
        result = preview(
            template,
            settings=settings,
            engine=engine,
            subscriber=resolve_subscriber(engine, subscriber),
            now=now_utc(),
        )
    except (PreviewError, CompileError, RenderError) as exc:
        raise fail(str(exc), 2) from exc
    rendered = result.rendered
    try:
        if out:
            out.write_text(rendered.html, encoding="utf-8")
        if eml:
            eml.write_bytes(rendered.bytes)
    except OSError as exc:
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", 2) from exc
    console.print(rendered.subject, style="bold", markup=False, highlight=False)
    console.print(f"  data: {result.note}", markup=False, highlight=False)
    console.print(f"  preheader: {rendered.preheader}")
    console.print(
        f"  to: {rendered.recipient}; {len(rendered.bytes) / 1000:.1f} KB; "
        f"text part {len(rendered.text)} characters"
    )
    for path in (out, eml):
        if path:
            console.print(f"  wrote {path}")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command("send-test")
def send_test_command(
    template: str = typer.Argument(..., help="Template name (database or shipped) or folder."),
    to: str = typer.Option(..., "--to", help="The address to send the test email to."),
    subscriber: str | None = typer.Option(
        None, help="Render as this subscriber (id, email or external key)."
    ),
    transport: str | None = typer.Option(
        None, help="smtp://host:port, smtps://…, outbox:DIR or memory: (default: smtp_url)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Send one test email of TEMPLATE to an address ([TEST] subject; nothing is recorded)."""
    from dataclasses import asdict

    from newsletter.db import now_utc
    from newsletter.deliver.send_test import AddressError, SendTestError, send_test
    from newsletter.deliver.transport import TransportConfigError
    from newsletter.render.compile import CompileError
    from newsletter.render.preview import PreviewError, preview_engine, resolve_subscriber
    from newsletter.render.sandbox import RenderError

    settings = settings_or_exit(config)
    engine = preview_engine(settings)
    try:
        sent = send_test(
            engine,
            template=template,
            to=to,
            settings=settings,
            now=now_utc(),
            subscriber=resolve_subscriber(engine, subscriber),
            transport_url=transport,
        )
    except (PreviewError, CompileError, RenderError, TransportConfigError, AddressError) as exc:
        raise fail(str(exc), 2) from exc
    except SendTestError as exc:
        raise fail(str(exc), 1) from exc
    if as_json:
        print_json(asdict(sent))
        return
    console.print(f"sent a test email to {sent.to}: {sent.subject}", markup=False)
    console.print(f"  data: {sent.data_note}", markup=False)
    console.print("  its opens, clicks and unsubscribes are not recorded", markup=False)
