"""`python -m app` runs the gateway, like the `fastkg` command."""

from app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
