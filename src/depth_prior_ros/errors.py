"""User-facing error types shared by the CLI and the tools it runs."""


class CommandError(RuntimeError):
    """A user-facing failure of a `depth-prior` command: printed as one sentence, exit status 2."""
