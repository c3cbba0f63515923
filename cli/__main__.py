from repost.cli.main import cli

cli(prog_name="repost")
