"""Consent before something that cannot be undone (a write sent again, flows deleted):
a y/N prompt on a terminal, where "n", Ctrl-D and Ctrl-C all refuse; elsewhere only
the command's --yes, given up front. The caller exits 3 when this says no."""

import sys

import click


def ask(question: str, declined: str, refused: str) -> bool:
    """``question`` on a terminal; ``declined`` after a no there; ``refused`` (what to do
    instead) when there is no terminal to ask on."""
    if sys.stdin.isatty():
        try:
            if click.confirm(question, default=False, err=True):
                return True
        except click.Abort:  # Ctrl-D or Ctrl-C at the prompt: a refusal like any other (exit 3)
            click.echo("", err=True)
        click.echo(declined, err=True)
        return False
    click.echo(refused, err=True)
    return False
