"""Every command has help, and the README documents it (the sqlite-utils habit)."""

from pathlib import Path

import pytest

from repost.cli.main import COMMANDS

from .helpers import repost

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_and_a_readme_section(command):
    result = repost(command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: repost {command}") or f"repost {command}" in result.output
    assert f"`repost {command}" in README, f"README has no section for repost {command}"


def test_readme_starts_with_the_two_commands():
    head = README.split("## ", 1)[0]
    assert "pip install -e . && .venv/bin/repost record" in head
    assert "pip install -e '.[test]' && .venv/bin/python -m pytest" in head


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest" in ci


def test_readme_secrets_section_lists_every_name_and_shape_redaction_covers():
    """README's Secrets section and the table in store/redact.py say the same thing (issue 12)."""
    from repost.store import redact

    section = README.split("### Secrets", 1)[1].split("\n## ", 1)[0]
    names = [
        *redact.SECRET_HEADERS, *redact.NOT_SECRET_HEADERS, *redact.SECRET_NAME_PARTS, *redact.SECRET_NAME_SUFFIXES,
        *redact.SECRET_NAME_EXACT, *redact.SECRET_PARAMS_EXACT,
    ]  # fmt: skip
    missing = [n for n in names if f"`{n}`" not in section] + [d for d in redact.TOKEN_SHAPES if d not in section]
    assert missing == [], f"README's Secrets section does not list {missing}"
    assert "Not covered" in section
