"""Composition root: settings, Slack app factory, runners, CLI and scheduler start-up."""
