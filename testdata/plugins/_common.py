"""Shared set-up of the test plugins: find libcni_py from this checkout."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", ".."))
