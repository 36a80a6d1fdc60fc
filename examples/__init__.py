"""Runnable workflows: ports of Floxide's examples, one topic per file.

Each module has a docstring saying what it shows, a module-level ``workflow`` (for
``floxide run examples/<name>.py:workflow``) and a ``main()`` (``python -m examples.<name>``).
"""
