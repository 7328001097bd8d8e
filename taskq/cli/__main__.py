"""`python -m taskq.cli`: the `taskq` command (tests and supervisors start it so)."""

from taskq.cli import main

main()
