#!/usr/bin/env python
"""The installed ``osteo-check-manifest``: see osteo/cli/check_manifest.py."""

from osteo.cli.check_manifest import main

if __name__ == "__main__":
    raise SystemExit(main())
