"""`python manage.py taskq worker|beat|status|job|dlq|...`: the taskq command on this project's
task backend (APP is taskq.contrib.django; `--backend ALIAS` picks another TASKS entry)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand

#: the APP every subcommand runs on
APP = "taskq.contrib.django"


class Command(BaseCommand):  # type: ignore[misc]
    help = ("Run taskq's command on the project's taskq task backend: worker, beat, status, job, dlq, queue, "
            "events, ... (`manage.py taskq status`; `manage.py taskq worker --help` for a command's options).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--backend", default=None, metavar="ALIAS",
                            help='the TASKS entry whose jobs to handle (default "default")')
        parser.add_argument("taskq_args", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                            help="a taskq command and its arguments, without APP")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskq.cli import main

        if options["backend"]:
            os.environ["TASKQ_DJANGO_BACKEND"] = options["backend"]
        # APP left out: taskq's commands take it from $TASKQ_APP (worker -p children inherit it)
        os.environ["TASKQ_APP"] = APP
        try:
            main.main(args=list(options["taskq_args"]), prog_name="manage.py taskq")
        except SystemExit as exc:  # click ends every run so; call_command() must return on success
            if exc.code not in (0, None):
                raise
