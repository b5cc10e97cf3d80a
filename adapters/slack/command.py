"""`coach serve slack`: Socket Mode when SLACK_APP_TOKEN is set, HTTP events on --port otherwise."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import click

# SIGTERM stops the process within this many seconds: half for answers in flight, half for handoff notices.
STOP_SECONDS = 8.0

if TYPE_CHECKING:  # the server (Bolt, aiohttp) loads only when the command runs, so `--help` stays quick
    from adapters.slack.server import SlackService


@click.command("slack")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535),
              help="HTTP mode: the port POST /slack/events listens on (0 picks a free one)")
@click.option("--host", default="0.0.0.0", show_default=True, help="HTTP mode: the address to bind")
@click.option("--mode", type=click.Choice(["auto", "socket", "http"]), default="auto", show_default=True,
              help="auto: Socket Mode when SLACK_APP_TOKEN is set, HTTP otherwise")
@click.option("--drafts-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where 'Save to knowledge base' writes drafts [default: DATA_DIR/drafts]")
@click.option("--workers", default=None, type=click.IntRange(1, 64),
              help="threads answering at once [default: 2 with template replies, 8 with an LLM]")
@click.pass_context
def slack(click_ctx: click.Context, port: int, host: str, mode: str, drafts_dir: Path | None,
          workers: int | None) -> None:
    """Serve the coach in Slack (DMs, @coach mentions, threads, /coach, /coach-kb)."""
    from adapters.cli_context import Context, runtime
    from adapters.slack.server import SlackService, api_url, check_credentials, verify_app_token

    ctx = click_ctx.ensure_object(Context)
    # Tokens are checked before the knowledge store and model load, so a typo fails in a second.
    credentials = check_credentials(ctx.settings)
    chosen = credentials.mode if mode == "auto" else mode
    verified = False
    if chosen == "socket" and credentials.app_token:
        asyncio.run(verify_app_token(credentials.app_token, api_url(ctx.settings)))
        verified = True
    rt = runtime(ctx)
    try:
        service = SlackService(rt, host=host, port=port, mode=cast(Literal["socket", "http"], chosen), drafts_dir=drafts_dir, workers=workers,
                               app_token_verified=verified)
        asyncio.run(_serve(service))
    finally:
        rt.close(flush_seconds=STOP_SECONDS / 2)  # deliver handoff notices already due, briefly


async def _serve(service: SlackService) -> None:
    # The coach's threads are CPU-bound; with Python's default 5 ms GIL switch interval the event
    # loop waits up to 5 ms at every wake-up before it can ack a request. 1 ms keeps a burst of
    # acks well inside Slack's three seconds for a small cost in answer throughput.
    sys.setswitchinterval(0.001)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C still raises KeyboardInterrupt
            pass
    # Start-up races the signal: SIGTERM or Ctrl-C while Slack is slow to answer still stops the process.
    starting = asyncio.ensure_future(service.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()  # a StartupError ends here, with exit 2
        where = ("Socket Mode (no public URL needed)" if service.mode == "socket"
                 else f"HTTP, Request URL path /slack/events on {service.host}:{service.port}")
        # One line on stderr that a person (and the tests) can wait for; no secrets in it.
        print(f"coach: Slack ready as @{service.identity.get('user', '?')} via {where}", file=sys.stderr, flush=True)
        await stopping
    finally:
        stopping.cancel()
        try:  # answers in flight get a bounded moment; the inbound queue's sweeper answers the rest later
            await asyncio.wait_for(service.stop(), STOP_SECONDS / 2)
        except asyncio.TimeoutError:
            print("coach: stopped before every answer in flight was sent; they are answered after restart",
                  file=sys.stderr, flush=True)
