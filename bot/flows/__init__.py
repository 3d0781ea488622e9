"""Workflows the listeners, the alert receiver and the scheduler hand off to: no Bolt listener here."""
