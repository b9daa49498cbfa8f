"""``cnitool``, the command line: :mod:`libcni_py.cli.main` is the entry
point (global options, dispatch, errors to exit codes); each other module
holds one group of commands and is imported only when one of them runs."""
