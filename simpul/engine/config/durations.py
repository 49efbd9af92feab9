"""Kept so existing imports keep working; the types live in simpul.config_types (below connectors)."""
from simpul.config_types import Duration, parse_duration

__all__ = ["Duration", "parse_duration"]
