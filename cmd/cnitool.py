#!/usr/bin/env python3
"""Run cnitool from a checkout, without installing: python3 cmd/cnitool.py ARGS."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), ".."))

from libcni_py.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
