"""advisor: how to serve an LLM on this GPU box, with the evidence."""

import os as _os

__version__ = "0.1.0"

# rules/, knowledge/ and probes/ sit at the top of the repository (the project's layout) and are
# installed as advisor.rules, advisor.knowledge and advisor.probes (pyproject's package-dir). Run
# from a checkout (tests, `python -m advisor`), the package is this folder: let those three names
# resolve to the top-level folders beside it. Installed, they are real subpackages and this is a no-op.
_here = _os.path.dirname(__file__)
_top = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "rules")) and all(
        _os.path.isfile(_os.path.join(_top, name, "__init__.py")) for name in ("rules", "knowledge", "probes")):
    __path__.append(_top)  # noqa: F821 - a package's own search path
