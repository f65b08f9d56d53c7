"""Backbones, adapters and export."""
