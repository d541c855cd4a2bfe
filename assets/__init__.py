"""Dagster asset definitions, one module per stage. Thin: each calls shamisa_core."""
