#!/usr/bin/env python
"""The installed ``osteo-extract-radiomics``: see osteo/cli/extract_radiomics.py."""

from osteo.cli.extract_radiomics import main

if __name__ == "__main__":
    raise SystemExit(main())
