#!/usr/bin/env python
"""The installed ``osteo-predict``: see osteo/cli/predict.py."""

from osteo.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main())
