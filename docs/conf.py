"""Sphinx configuration for the sk_asd documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html``. The build
needs no network access and runs no heavy code: autodoc only imports the
package, and the user guide shows code as literal blocks.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import date
from pathlib import Path

# Document the source tree next to this folder, also when the package is not
# installed.
sys.path.insert(0, os.path.abspath(".."))

import sk_asd  # noqa: E402

# autosummary rewrites its pages on every build but never deletes one; start
# from an empty folder so that a page of a renamed or removed object cannot
# linger (and fail the -W build as "not included in any toctree").
shutil.rmtree(Path(__file__).resolve().parent / "generated", ignore_errors=True)

project = "sk_asd"
author = "sk_asd developers"
copyright = f"{date.today().year}, {author}"
release = sk_asd.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
language = "en"

# -- autodoc / autosummary ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# Signatures without type hints: the numpydoc sections describe the types, and
# the hints of postponed annotations would otherwise clutter every signature.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
add_module_names = False

# -- numpydoc ----------------------------------------------------------------
# autosummary templates list the members; numpydoc must not add a second list.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- intersphinx -------------------------------------------------------------
# The build machine is offline, so no inventory is fetched. To link to the
# Python, NumPy, scikit-learn and PyTorch docs on a machine with network
# access, fill this in, e.g. {"sklearn": ("https://scikit-learn.org/stable",
# None)}.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_asd {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


def _skip_generated_request_methods(app, what, name, obj, skip, options):
    """Leave out the ``set_*_request`` methods scikit-learn generates.

    They exist on every estimator, splitter and scorer that accepts metadata,
    their docstrings link into scikit-learn's own documentation (glossary
    terms and labels that do not exist here), and they are described once in
    :doc:`/tuning` instead.
    """
    qualname = getattr(obj, "__qualname__", "")
    if qualname.startswith("RequestMethod."):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_generated_request_methods)
