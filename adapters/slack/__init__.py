"""Slack adapter: Bolt listeners that translate Slack events to `InboundMessage` and `Reply` to Block Kit.

- `translate`: pure functions in both directions, no network.
- `kb_draft`: the integrators' "Save to knowledge base" modal and the draft file it writes.
- `app`: the Bolt `AsyncApp` and its listeners (translate, `Coach.handle`, translate back).
- `server`: start-up checks and the two ways to run: Socket Mode, or HTTP on aiohttp.
- `command`: `coach serve slack`.
"""
