"""The API reference lists every public name, and each has numpydoc sections.

These checks read ``docs/api.rst`` as text and import the package; they need
neither Sphinx nor a documentation build, so they run with the other tests.
The Sphinx build itself (``python -m sphinx -W -b html docs
docs/_build/html``) checks that the pages render without warnings.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_RST = DOCS / "api.rst"

#: Modules whose public names must all be in the API reference. A module's
#: public names are its ``__all__`` or, without one, the classes and
#: functions it defines whose names do not start with an underscore. The
#: rest of ``sk_asd.estimator`` (the skorch net, input checks, thresholds,
#: streaming and thread helpers) is implementation detail of the detector.
PUBLIC_MODULES = (
    "sk_asd",
    "sk_asd.io",
    "sk_asd.datasets",
    "sk_asd.metrics",
    "sk_asd.model_selection",
    "sk_asd.plotting",
    "sk_asd.cli",
    "sk_asd.estimator.baseline",
    "sk_asd.nn.frontend",
    "sk_asd.nn.mobilefacenet",
    "sk_asd.nn.network",
    "sk_asd.nn.margins",
    "sk_asd.nn.losses",
)

#: A numpydoc section heading: a capitalised title over a line of dashes.
_SECTION = re.compile(
    r"^[ \t]*([A-Z][A-Za-z ]*?)[ \t]*\n[ \t]*-{3,}[ \t]*$", re.MULTILINE
)


def _api_entries() -> list[tuple[str, str]]:
    """``(currentmodule, name)`` of every item of every autosummary in api.rst."""
    entries = []
    module = None
    lines = API_RST.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"\.\. (?:current)?module:: (\S+)", line.strip())
        if match and not line.startswith(" "):
            module = match.group(1)
        if line.strip() == ".. autosummary::":
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i][0] == " "):
                item = lines[i].strip()
                if item and not item.startswith(":") and not item.startswith(".."):
                    entries.append((module, item.lstrip("~")))
                i += 1
            continue
        i += 1
    return entries


def _resolve(module: str | None, name: str) -> Any:
    """The object ``name`` refers to under ``.. currentmodule:: module``.

    Tried as ``module.name`` first, then as an absolute dotted name, as
    autosummary does: the longest importable module prefix, then attributes.
    """
    candidates = ([f"{module}.{name}"] if module else []) + [name]
    for dotted in candidates:
        parts = dotted.split(".")
        for split in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attr in parts[split:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return obj
    raise LookupError(f"{name!r} (currentmodule {module!r}) does not resolve")


def _public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module_name
        ]
    # Dunder entries such as __version__ are not API objects to document.
    return [name for name in names if not name.startswith("__")]


def _sections(obj: Any) -> set[str]:
    # The object's own docstring: a class without one must not pass on the
    # strength of a base class's docstring.
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return set(_SECTION.findall(inspect.cleandoc(doc or "")))


def _has_named_parameters(obj: Any) -> bool:
    """Whether calling ``obj`` takes any argument worth documenting."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return True
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.isclass(obj):
        # torch.nn.Module.__init__(*args, **kwargs) accepts nothing in fact.
        return any(
            k not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            for k in kinds
        )
    return bool(kinds)


def _returns_none(func: Any) -> bool:
    annotation = inspect.signature(func).return_annotation
    return annotation is None or annotation == "None"


ENTRIES = _api_entries()
DOCUMENTED = [(f"{module}.{name}", module, name) for module, name in ENTRIES]


def test_api_rst_has_entries():
    assert len(ENTRIES) > 40, ENTRIES


@pytest.mark.parametrize(("label", "module", "name"), DOCUMENTED, ids=lambda x: x)
def test_api_entry_resolves(label, module, name):
    _resolve(module, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_api_rst(module_name):
    documented = [_resolve(module, name) for module, name in ENTRIES]
    module = importlib.import_module(module_name)
    missing = [
        name
        for name in _public_names(module_name)
        if not any(getattr(module, name) is obj for obj in documented)
    ]
    assert not missing, (
        f"public names of {module_name} missing from docs/api.rst: {missing}"
    )


@pytest.mark.parametrize(("label", "module", "name"), DOCUMENTED, ids=lambda x: x)
def test_docstring_sections(label, module, name):
    obj = _resolve(module, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants are documented by a ``#:`` comment
    sections = _sections(obj)
    problems = []
    if _has_named_parameters(obj) and "Parameters" not in sections:
        problems.append("a Parameters section")
    if inspect.isclass(obj):
        if "Attributes" not in sections:
            problems.append("an Attributes section")
    elif not sections & {"Returns", "Yields"} and not _returns_none(obj):
        problems.append("a Returns or Yields section")
    assert not problems, (
        f"docstring of {label} lacks {' and '.join(problems)} (found: "
        f"{sorted(sections)})"
    )


def test_every_example_is_in_the_gallery():
    gallery = (DOCS / "examples.rst").read_text(encoding="utf-8")
    included = set(re.findall(r"\.\. literalinclude:: \.\./examples/(\S+)", gallery))
    scripts = {path.name for path in (ROOT / "examples").glob("*.py")}
    missing = sorted(scripts - included)
    assert not missing, f"add to docs/examples.rst: {missing}"


def test_every_page_is_in_the_toctree():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   ([\w/-]+)$", index, re.MULTILINE))
    pages = {path.stem for path in DOCS.glob("*.rst")} - {"index"}
    assert pages <= listed, f"add to the toctree of docs/index.rst: {pages - listed}"
