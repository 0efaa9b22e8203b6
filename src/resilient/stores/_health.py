"""Says when a store fails and when it is back: once per outage, never once per call.

A store that fails open (``on_error="allow"``) keeps the service running, which also makes an
outage easy to miss. So the first failure of an outage logs one WARNING on the ``resilient``
logger, visible even when the application configured no logging (Python's last-resort
handler prints warnings to stderr), and the first success after it logs one INFO line.
Everything in between is silent here (each failure is still a `StoreError` event).

The healthy path pays one attribute check (``if health.down:``) after a successful round
trip; the lock is taken only at the two transitions.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["StoreHealth"]

logger = logging.getLogger("resilient")

_ACTIONS = {
    "allow": "calls go ahead without it (fail open)",
    "deny": "calls are refused",
    "raise": "calls raise StoreUnavailable",
    "local": "breakers decide locally in each process",
}


class StoreHealth:
    """The up/down state of one store, for logging transitions once.

    Args:
        store: a short description of the store for the log lines (its ``repr`` or so).
    """

    __slots__ = ("_lock", "down", "store")

    def __init__(self, store: str) -> None:
        self._lock = threading.Lock()
        self.store = store
        #: True from the first failure of an outage until the next success.
        self.down = False

    def failed(
        self, error: BaseException, *, policy: str, name: str, operation: str, action: str
    ) -> None:
        """Note a failure; the first one of an outage logs a WARNING."""
        if self.down:
            return
        with self._lock:
            if self.down:
                return
            self.down = True
        logger.warning(
            "resilient: store %s unavailable (%s %r, operation %r): %s; %s until it recovers",
            self.store,
            policy,
            name,
            operation,
            error,
            _ACTIONS.get(action, f"action {action!r}"),
            extra={
                "resilient_store": self.store,
                "resilient_policy": policy,
                "resilient_name": name,
                "resilient_operation": operation,
                "resilient_action": action,
            },
        )

    def recovered(self) -> None:
        """Note a success after failures: logs one INFO line."""
        with self._lock:
            if not self.down:
                return
            self.down = False
        logger.info(
            "resilient: store %s available again", self.store, extra={"resilient_store": self.store}
        )
