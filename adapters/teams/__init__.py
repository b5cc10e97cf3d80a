"""Microsoft Teams adapter: Bot Framework activities in, Adaptive Cards out.

`translate` holds the pure functions, `bot` the ActivityHandler, `server` the aiohttp
endpoint, `proactive` the notifier the handoff side calls, `references` the stored
conversation references. Nothing here decides a route; `Coach` does.
"""
