"""Compose trained runs without retraining: merge task vectors."""
