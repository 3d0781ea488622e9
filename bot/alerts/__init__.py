"""Alertmanager in, Slack threads out: the webhook receiver, the alert threads, and silences."""
