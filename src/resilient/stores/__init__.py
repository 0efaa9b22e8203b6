"""State stores shared by policies: in process memory, or Redis for many processes.

- `MemoryStore` keeps state in this process: thread- and task-safe, bounded (``max_keys``,
  idle keys expire), exact under concurrency. It is every limiter's default.
- `RedisStore` keeps state in Redis, shared by every process using the same server: one Lua
  script (one round trip) per decision, Redis's clock, a TTL on every key, hash-tagged keys for
  Redis Cluster, and an ``on_error`` policy for when Redis is down.
"""

from __future__ import annotations

from ._memory import MemoryStore
from ._redis import RedisStore

__all__ = ["MemoryStore", "RedisStore"]
