"""``python -m geoconv``: the same program as the ``geoconv`` console script."""

from geoconv.cli import main

# Guarded so that importing this module (pytest --doctest-modules does) runs nothing.
if __name__ == "__main__":
    raise SystemExit(main())
