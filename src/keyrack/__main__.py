"""``python -m keyrack``: the command line, as the ``keyrack`` console script runs it."""

from keyrack.cli.main import main

if __name__ == "__main__":
    main()
