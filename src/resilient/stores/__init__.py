"""State stores shared by policies: in process memory, or Redis for many processes."""

from __future__ import annotations

__all__: list[str] = []
