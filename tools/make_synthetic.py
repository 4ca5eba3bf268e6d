#!/usr/bin/env python
"""The installed ``osteo-make-synthetic``: see osteo/cli/make_synthetic.py."""

from osteo.cli.make_synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
