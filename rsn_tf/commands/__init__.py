"""Subcommands of the ``rsn`` CLI; each module is a thin wrapper over library functions."""
