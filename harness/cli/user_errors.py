"""How every `flopgap` command reports an error the user can fix: one line on stderr and the error's exit code.

Anything that is not a :class:`~devices.core.errors.FlopgapError` is a bug and keeps its traceback. The decorator sits
on each command (not only on the top-level app) so a command mounted in another Typer app behaves the same.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from devices.core.errors import FlopgapError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(command: F) -> F:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as exc:  # not an error: the message says what was kept and how to resume
            typer.echo(str(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as stop:  # a command with nothing to resume: stopped, with the signal's exit code
            typer.echo("interrupted", err=True)
            raise typer.Exit(Interrupted.by(stop, "").exit_code) from None
        except FlopgapError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
