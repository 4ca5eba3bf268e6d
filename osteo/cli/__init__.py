"""The command-line programs: ``main()`` of each installed command (``[project.scripts]``).

``tools/<name>.py`` runs the same ``main()``, so ``python tools/fit.py --config ...`` and
``osteo-fit --config ...`` behave alike.
"""
