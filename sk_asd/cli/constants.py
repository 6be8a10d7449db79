"""What the command line's options show, read from the package's source.

``sk-asd train --help`` shows the detector's defaults and the names of the
losses, scoring back-ends and the model-file suffix.  The modules that
define them import torch, which takes seconds, for a help text.  They are
read here from those modules' source instead, with :func:`ast.literal_eval`
(literals only: nothing is executed), so each value keeps its one
definition.  Where a source cannot be read (an install without ``.py``
files) or does not hold a literal, the module is imported after all.
``tests/test_cli.py`` checks that both ways give the same values.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path
from typing import Any

__all__ = ["detector_defaults", "package_constant"]

_PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def _tree(module: str) -> ast.Module | None:
    """The parsed source of ``sk_asd.<module>``, or ``None``."""
    path = _PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


def package_constant(module: str, name: str) -> Any:
    """The module-level constant ``name`` of ``sk_asd.<module>``.

    Parameters
    ----------
    module : str
        Dotted path below ``sk_asd``, e.g. ``"nn.losses"``.
    name : str
        A name assigned a literal at module level.
    """
    tree = _tree(module)
    for node in tree.body if tree is not None else ():
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value is not None
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    return getattr(importlib.import_module(f"sk_asd.{module}"), name)


def detector_defaults() -> dict[str, Any]:
    """``AnomalousSoundDetector().get_params()``, from the constructor's source."""
    tree = _tree("estimator.detector")
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.ClassDef) and node.name == "AnomalousSoundDetector":
            init = next(
                (
                    item
                    for item in node.body
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__"
                ),
                None,
            )
            if init is None:
                break
            try:
                return {
                    arg.arg: ast.literal_eval(default)
                    for arg, default in zip(
                        init.args.kwonlyargs, init.args.kw_defaults, strict=True
                    )
                    if default is not None
                }
            except ValueError:
                break
    from sk_asd.estimator.detector import AnomalousSoundDetector

    return AnomalousSoundDetector().get_params()
