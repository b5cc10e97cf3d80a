"""`coach serve teams [--port N] [--host H]`: the Teams endpoint."""

from __future__ import annotations

import click


@click.command(name="teams")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="port for /api/messages (default: settings teams.port, 3978)")
@click.option("--host", default=None,
              help="interface to listen on (default: 127.0.0.1 in emulator mode, 0.0.0.0 when authenticated)")
def teams(port: int | None, host: str | None) -> None:
    """Serve the coach to Microsoft Teams on POST /api/messages (and GET /healthz)."""
    from adapters.cli_context import Context, err, runtime
    from adapters.teams.server import EMULATOR, auth_mode, check_host, default_host, run

    ctx = click.get_current_context().ensure_object(Context)
    settings = ctx.settings
    mode = auth_mode(settings.teams)  # a half-set registration fails here, before the model loads
    check_host(mode, host or default_host(mode))  # and an unauthenticated public bot too
    rt = runtime(ctx)
    where = f"http://{host or default_host(mode)}:{port or settings.teams.port}/api/messages"
    if mode == EMULATOR:
        err.print(f"[yellow]Teams endpoint {where} in LOCAL EMULATOR MODE (no MicrosoftAppId/"
                  "MicrosoftAppPassword): requests are not authenticated. Connect the Bot Framework "
                  "Emulator to this URL.[/yellow]", highlight=False)
    else:
        err.print(f"Teams endpoint {where} (authenticated as app {settings.teams.app_id}).", highlight=False)
    run(rt, host=host, port=port)
