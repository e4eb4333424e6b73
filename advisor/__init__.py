"""advisor: how to serve an LLM on this GPU box, with the evidence.

rules/, knowledge/ and probes/ sit at the top of the repository (the project's layout) and are
installed as advisor.rules, advisor.knowledge and advisor.probes (pyproject's package-dir). A
checkout gets the same names from an editable install (`pip install -e .`), whose finder maps them.
"""

__version__ = "0.1.0"
