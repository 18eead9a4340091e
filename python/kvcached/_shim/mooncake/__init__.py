"""kvcached's stand-in for the `mooncake` package (the opt-in import shim;
see kvcached/shim.py and docs/python.md). Only `mooncake.store` is
kvcached's; any other submodule (mooncake.engine, ...) is looked up in a
real Mooncake installation further down sys.path, when there is one."""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _candidate = os.path.join(_entry or os.getcwd(), "mooncake")
    if os.path.isdir(_candidate) and os.path.abspath(_candidate) != _here:
        __path__.append(_candidate)  # noqa: F821  (the package's own __path__)
