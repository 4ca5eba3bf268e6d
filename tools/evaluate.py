#!/usr/bin/env python
"""The installed ``osteo-evaluate``: see osteo/cli/evaluate.py."""

from osteo.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
