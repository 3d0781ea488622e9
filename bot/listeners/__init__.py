"""Slack listeners; each module's `register(app, services)` adds its listeners to the Bolt app."""
