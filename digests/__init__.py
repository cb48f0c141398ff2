"""Scheduled digests: schedules, composition, rendering, charts and exactly-once delivery."""
