"""`python -m gradcheck_cli` entry point."""

import sys

# Guarded: worker processes are spawned, and spawn re-imports the parent's __main__.
if __name__ == "__main__":
    try:
        from gradcheck_cli.cli import main
    except KeyboardInterrupt:  # Ctrl-C before the command line's own handler exists
        exec("None")  # resets CPython's unhandled-KeyboardInterrupt flag: cli.handler
        sys.stderr.write("interrupted\n")
        sys.exit(2)
    raise SystemExit(main())
