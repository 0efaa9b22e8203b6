"""The demo behind ``make demo``."""

from __future__ import annotations

from importlib.metadata import version


def main() -> None:
    print(f"resilient demo (resilient-patterns {version('resilient-patterns')})")


if __name__ == "__main__":
    main()
