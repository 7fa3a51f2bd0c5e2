"""``python -m app ...``: the same as the ``spinemed`` command (see app/cli.py)."""
from __future__ import annotations

from app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
