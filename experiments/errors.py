"""Errors shared by the command line and its subcommands."""


class UsageError(Exception):
  """Bad user input to a subcommand: printed in one line, exit code 2."""
