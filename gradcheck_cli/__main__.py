"""`python -m gradcheck_cli` entry point."""

from gradcheck_cli.cli import main

# Guarded: worker processes are spawned, and spawn re-imports the parent's __main__.
if __name__ == "__main__":
    raise SystemExit(main())
