"""Kept for imports written before :mod:`poolkit._io` existed; everything lives there now."""

from poolkit._io import atomic_write_bytes, atomic_write_text, read_jsonl, write_jsonl

__all__ = ["atomic_write_bytes", "atomic_write_text", "read_jsonl", "write_jsonl"]
