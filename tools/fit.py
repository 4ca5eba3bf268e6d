#!/usr/bin/env python
"""The installed ``osteo-fit``: see osteo/cli/fit.py."""

from osteo.cli.fit import main

if __name__ == "__main__":
    raise SystemExit(main())
