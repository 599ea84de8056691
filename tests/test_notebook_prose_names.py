"""Every name a notebook's prose tells the student to type exists.

A notebook's text often says "type `vae_recipe.train_vae?`" or "try `SETTINGS = ...`". When the code moves on and
the text does not, the student meets a NameError or an AttributeError that the notebook run never sees (the text is
never executed). This test reads the markdown cells and checks three kinds of backticked span:

1. **help requests**: `name?` or `name??` (a dotted name followed by one or two question marks);
2. **whole dotted names**: a span that is only `a.b` or `a.b.c` (optionally followed by a call's parentheses),
   such as `losses.gradient_penalty` or `autoencoder_recipe.corrupt(...)`;
3. **suggested assignments**: a span right after the word "try" or "set" that is Python code, such as
   "try `EPOCHS = 10`". When the right-hand side is a literal, the student is told to turn a knob, so the knob (the
   target) must exist; otherwise every name the code reads must exist.

A name resolves when its first part is defined in one of the notebook's own code cells (assigned, imported, a
function, a class, a parameter, a loop variable), is a builtin, is a module of ``course_utils``, or is one of the
usual short names of a library (``torch``, ``nn``, ``F``, ``np``, ``scipy``). When the first
part is an imported module, the rest of the dotted name must be a real attribute (the module is imported and
walked, ``course_utils`` included). When it is a variable, its attributes are runtime values that this test cannot
see and are not checked. Spans inside fenced code blocks and maths are ignored, and ordinary code words
(`x_hat = x` in a sentence, keyword arguments such as `create_graph=True`, expressions) are not one of the three
kinds, so they are never flagged.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import re
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

# Names that the text may use for a library without the notebook importing it under that name.
CONVENTIONS = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "np": "numpy", "scipy": "scipy"}
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
HELP = re.compile(rf"^({DOTTED})\?\??$")
WHOLE_DOTTED = re.compile(rf"^({DOTTED}\.[A-Za-z_]\w*)(?:\(.*\))?$")
SUGGESTION = re.compile(r"\b(?:try|set)\s+`([^`\n]+)`", re.IGNORECASE)
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"```.*?```", re.DOTALL)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.DOTALL)


class Namespace:
    """What a notebook's code cells define: plain names, and the imported names with what they refer to."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.imports: dict[str, str] = {}  # local name -> dotted path ("F" -> "torch.nn.functional")

    def add_code(self, source: str) -> None:
        """Collect the names that ``source`` (one code cell, IPython syntax allowed) defines."""
        tree = ast.parse(TransformerManager().transform_cell(source))  # IPython's syntax made Python
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.imports[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.names.add(node.name)
            elif isinstance(node, ast.arg):
                self.names.add(node.arg)

    def resolves(self, dotted: str) -> bool:
        """Whether ``dotted`` names something the student can reach in this notebook (see the module docstring)."""
        root, *rest = dotted.split(".")
        if root in self.imports:
            return _exists(".".join([self.imports[root], *rest]))
        if root in self.names or hasattr(builtins, root):
            return True  # a runtime value: its attributes are not checked
        if root in CONVENTIONS:
            return _exists(".".join([CONVENTIONS[root], *rest]))
        return _exists(dotted if root == "course_utils" else f"course_utils.{dotted}")


def _exists(path: str) -> bool:
    """Whether the dotted ``path`` is an importable module or an attribute reached from one."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                try:  # a submodule not imported by its package yet
                    obj = importlib.import_module(f"{obj.__name__}.{attribute}")
                except (ImportError, AttributeError):
                    return False
            else:
                obj = getattr(obj, attribute)
        return True
    return False


def _names_read(code: str) -> list[str]:
    """The dotted names that ``code`` reads (``a.b.c`` as one name), in order."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            parts = []
            while isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name):
                found.append(".".join([node.id, *reversed(parts)]))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.append(node.id)
    return found


def names_to_check(markdown: str) -> list[str]:
    """The names a markdown cell tells the student to type, by the three rules of the module docstring."""
    text = MATH.sub(" ", FENCE.sub(" ", markdown))
    wanted = []
    for span in SPAN.findall(text):
        if match := HELP.match(span) or WHOLE_DOTTED.match(span):
            wanted.append(match.group(1))
    for span in SUGGESTION.findall(text):
        try:
            tree = ast.parse(span)
        except SyntaxError:
            continue  # prose in backticks, not code
        statement = tree.body[0] if len(tree.body) == 1 else None
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            wanted.extend(ast.unparse(target) for target in statement.targets)  # a knob: it must exist
        elif isinstance(statement, (ast.Assign, ast.Expr)):
            value = statement.value
            wanted.extend(_names_read(ast.unparse(value)))
    return wanted


def missing_names(notebook: dict) -> list[tuple[int, str]]:
    """``(cell index, name)`` for every name the prose asks for that the notebook and course_utils lack."""
    namespace = Namespace()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            namespace.add_code("".join(cell["source"]))
    missing = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown":
            wanted = names_to_check("".join(cell["source"]))
            missing += [(index, name) for name in wanted if not namespace.resolves(name)]
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_name_the_prose_asks_for_exists(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    missing = missing_names(notebook)
    assert not missing, f"{path.name}: the text names what does not exist: " + "; ".join(
        f"cell {index} ({notebook['cells'][index].get('id')}): `{name}`" for index, name in missing
    )


def _cells(*sources: tuple[str, str]) -> dict:
    return {"cells": [{"cell_type": kind, "source": source} for kind, source in sources]}


def test_the_rules_flag_what_is_missing_and_nothing_else() -> None:
    notebook = _cells(
        ("code", "from course_utils import losses\nimport torch.nn.functional as F\nSETTINGS = 1\nmodel = None"),
        (
            "markdown",
            "Type `losses.gradient_penalty?`, read `F.binary_cross_entropy_with_logits`, look at `model.anything`, "
            "try `SETTINGS = 3` and try `longer = losses.kl_divergence(SETTINGS)`; `x_hat = x` and `create_graph=True`"
            " are not instructions.\n```\nnot.checked\n```",
        ),
        ("markdown", "Try `EPOCHS = 10`, or `train.corrupt?`, or `losses.no_such_loss`, or try `y = undefined(1)`."),
    )
    assert missing_names(notebook) == [
        (2, "train.corrupt"),
        (2, "losses.no_such_loss"),
        (2, "EPOCHS"),
        (2, "undefined"),
    ]
