"""Dagster wiring: Definitions, jobs, schedules, sensors and resources."""
