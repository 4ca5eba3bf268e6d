#!/usr/bin/env python
"""The installed ``osteo-compare``: see osteo/cli/compare.py."""

from osteo.cli.compare import main

if __name__ == "__main__":
    raise SystemExit(main())
