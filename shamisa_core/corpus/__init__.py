"""Corpus of distorted groups stored as WebDataset shards (METHOD.md §2; DECISIONS 2, 5, 12)."""
