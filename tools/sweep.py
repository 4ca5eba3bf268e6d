#!/usr/bin/env python
"""The installed ``osteo-sweep``: see osteo/cli/sweep.py."""

from osteo.cli.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
