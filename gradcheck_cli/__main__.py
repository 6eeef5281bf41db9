"""`python -m gradcheck_cli` entry point."""

from gradcheck_cli.cli import main

raise SystemExit(main())
