"""`python -m bluegreen` runs the CLI."""

from bluegreen.cli import main

main()
