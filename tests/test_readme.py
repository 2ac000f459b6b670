"""The README stays true: its quickstart commands are the ones CI runs, and every CLI command is documented."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from typer.main import get_command

from harness.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _quickstart_commands() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def _ci_commands() -> list[str]:
    """The command lines of .ci/run after its apt and environment set-up: what CI runs, in order."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    start = next(i for i, line in enumerate(lines) if "pip install" in line)
    return [line for line in lines[start:] if line and not line.startswith("#")]


def test_quickstart_is_the_sweep_then_the_test_commands_and_ci_runs_exactly_those() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 3
    assert commands[0].endswith("flopgap sweep --quick")
    assert "python -m pytest -q" in commands[1] and " -m slow" in commands[2]  # the slow tier after the rest
    assert _ci_commands() == commands[1:]


def test_ci_requires_every_environment_the_tests_can_need() -> None:
    assert "export FLOPGAP_REQUIRE=all" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_cli_command_has_a_readme_section_with_an_example() -> None:
    group = get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert {"models", "export", "sweep", "run", "results", "devices", "push", "report", "profile"} <= set(names)
    for name in names:
        assert f"### `flopgap {name}" in README, f"README has no section for 'flopgap {name}'"
        assert re.search(rf"```bash\n(?:.*\n)*?flopgap {name}\b", README), f"no example of 'flopgap {name}'"


def test_flop_gap_section_is_what_the_claims_function_prints_for_the_sample_database(tmp_path: Path) -> None:
    from harness.analysis import load
    from harness.analysis.claims import flop_gap_claims
    from harness.report.flop_gap import flop_gap_markdown

    section = README.split("<!-- flop-gap:begin -->\n", 1)[1].split("<!-- flop-gap:end -->", 1)[0]
    sample = Path(shutil.copy(ROOT / "results" / "sample.db", tmp_path))  # a reader leaves -wal/-shm beside it
    expected = flop_gap_markdown(flop_gap_claims(load(sample)))
    assert section == expected, "rerun 'python -m harness.report.flop_gap results/sample.db' into the README"
