"""Provenance tags: a registered version names its profile, corpus hash and git commit (issue 9)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import torch

from shamisa_core.evaluation.encoders import TRAINED, EncoderHandle
from shamisa_core.provenance import source_commit
from shamisa_core.serving.registry import encoder_tags

REPO = Path(__file__).resolve().parents[1]


def test_source_commit_is_head_of_this_checkout_and_none_elsewhere(tmp_path):
    if (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        commit = source_commit(REPO)
        assert commit is not None and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)
        assert commit.split("-")[0] == head
    assert source_commit(tmp_path) is None  # not a git checkout


def test_a_trained_encoders_summary_carries_profile_corpus_and_commit_into_the_tags():
    meta = {"model_config": {"arch": "resnet18", "init": "imagenet"}, "step": 200,
            "config": {"profile": "cpu-small"}, "corpus_hash": "c0ffee" * 4, "git_commit": "ab" * 20}
    handle = EncoderHandle(role=TRAINED, module=torch.nn.Identity(), meta=meta, fingerprint="f1",
                           source="encoder.pt")
    tags = encoder_tags(handle.to_json())  # what evaluation results carry as meta.encoder
    assert tags["profile"] == "cpu-small" and tags["init"] == "imagenet" and tags["arch"] == "resnet18"
    assert tags["corpus_hash"] == "c0ffee" * 4 and tags["git_commit"] == "ab" * 20
    assert tags["training_steps"] == "200" and tags["encoder_fingerprint"] == "f1"
