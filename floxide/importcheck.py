"""Import every module of some packages: ``python -m floxide.importcheck PACKAGE...``.

An image's smoke test: a module that imports a library its install did not bring (an undeclared
dependency) fails here, at build time, instead of in a pod at start. Exit status 0 when every
module imports, 1 otherwise, with one line per failure.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["import_all", "main"]


def import_all(packages: Sequence[str]) -> dict[str, str]:
    """Import each package and every module below it (``__main__`` aside); the failures, by module name."""
    failures: dict[str, str] = {}
    for name in packages:
        try:
            package = importlib.import_module(name)
        except Exception as exc:  # what a failing import raises is up to the module
            failures[name] = f"{type(exc).__name__}: {exc}"
            continue
        for module in pkgutil.walk_packages(getattr(package, "__path__", []), f"{name}."):
            if module.name.rpartition(".")[2] == "__main__":
                continue  # a program, not a module: importing it runs it
            try:
                importlib.import_module(module.name)
            except Exception as exc:
                failures[module.name] = f"{type(exc).__name__}: {exc}"
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Import the packages named in ``argv``; print each failure; the exit status."""
    packages = list(sys.argv[1:] if argv is None else argv)
    if not packages:
        print("usage: python -m floxide.importcheck PACKAGE...", file=sys.stderr)
        return 2
    failures = import_all(packages)
    for module, error in sorted(failures.items()):
        print(f"{module}: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
