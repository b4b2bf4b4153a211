"""``python -m xpkmeans``: the command line (see ``xpkmeans.cli``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
