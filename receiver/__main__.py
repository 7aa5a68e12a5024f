"""Entry point for ``python -m receiver``."""

from receiver.cli import main

raise SystemExit(main())
