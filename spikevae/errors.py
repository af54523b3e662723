"""The one exception type that reaches users as a one-line message."""


class SpikevaeError(Exception):
    """Bad input or an impossible request; the CLI prints it as one line and exits non-zero."""
