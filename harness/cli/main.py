"""The ``flopgap`` command line.

User errors (:class:`devices.core.errors.FlopgapError`) print one line and exit 2 (see :mod:`harness.cli.user_errors`);
anything else is a bug and keeps its traceback. Bad option values are typer's usage errors, also exit 2.
"""

from __future__ import annotations

import signal
from types import FrameType

import typer

from devices.core.errors import Terminated

app = typer.Typer(
    help="flopgap: measure how fast efficient CNNs really run, and where FLOP counts lie.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount_subcommands() -> None:
    from harness.cli.calibrate import calibrate
    from harness.cli.compare import compare
    from harness.cli.devices import devices_app, push
    from harness.cli.export import export
    from harness.cli.lab import lab_app
    from harness.cli.models import models
    from harness.cli.predict import predict, predictor_app
    from harness.cli.predictor_files import export_predictor_file  # noqa: F401  (registers list/export/import)
    from harness.cli.profile import profile
    from harness.cli.proxies import proxies_app
    from harness.cli.report import report
    from harness.cli.results import results_app
    from harness.cli.run import run_point
    from harness.cli.sweep import sweep

    app.command("models")(models)
    app.command("export")(export)
    app.command("sweep")(sweep)
    app.command("run")(run_point)
    app.add_typer(results_app, name="results")
    app.add_typer(devices_app, name="devices")
    app.add_typer(proxies_app, name="proxies")
    app.add_typer(predictor_app, name="predictor")
    app.add_typer(lab_app, name="lab")
    app.command("push")(push)
    app.command("report")(report)
    app.command("profile")(profile)
    app.command("calibrate")(calibrate)
    app.command("predict")(predict)
    app.command("compare")(compare)


_mount_subcommands()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def main() -> None:
    """Console-script entry point. SIGTERM (what systemd, ``timeout`` and CI runners send) unwinds as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":
    main()
