"""The Dagster Definitions of the SHAMISA pipeline."""

from __future__ import annotations

from dagster import Definitions

from assets.corpus import corpus_manifest, corpus_rules, corpus_shards, pristine_images
from pipelines.resources import default_resources

defs = Definitions(
    assets=[pristine_images, corpus_shards, corpus_manifest],
    asset_checks=[corpus_rules],
    resources=default_resources(),
)
