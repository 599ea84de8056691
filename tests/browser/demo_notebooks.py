"""Small notebooks the browser tests write themselves: one a student would be happy with, one broken on purpose.

They exercise each thing the suite checks (a tqdm.auto progress bar, a matplotlib figure, a picture widget driven by
a slider), so the checks are proven to pass on a healthy notebook and to fail on a broken one, independently of the
course notebooks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

PROGRESS = """\
import time
from tqdm.auto import tqdm

for _ in tqdm(range(12), desc="training"):
    time.sleep(0.01)"""

FIGURE = """\
import matplotlib.pyplot as plt

plt.plot([0, 1, 4, 9, 16])
plt.title("a plot")
plt.show()"""

# A picture widget in the style of course_utils.widgets.picture_widget, from plain ipywidgets (so the suite's own
# proof does not depend on the course code it tests): a bar that grows with the slider, a new picture at every step.
PICTURE_WIDGET = """\
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np


def render(step):
    picture = np.zeros((8, 8))
    picture[: step + 1, :] = 1.0
    buffer = io.BytesIO()
    plt.imsave(buffer, np.kron(picture, np.ones((8, 8))), cmap="gray_r", vmin=0, vmax=1, format="png")
    return buffer.getvalue()


slider = widgets.IntSlider(value=0, min=0, max=7, description="step")
image = widgets.Image(value=render(0), format="png", layout=widgets.Layout(align_self="flex-start"))
slider.observe(lambda change: setattr(image, "value", render(change["new"])), names="value")
widgets.VBox([slider, image])"""

# Broken on purpose, one fault per cell.
BROKEN_RENDER = """\
import ipywidgets as widgets
import numpy as np
from course_utils.widgets import picture_widget


def render(step):
    if step > 0:
        raise ValueError("the decoder is not trained yet")
    return np.eye(8)


picture_widget(render, step=widgets.IntSlider(value=0, min=0, max=7, description="broken step"))"""

# A hand-made slider whose callback raises: the picture never changes and the traceback never reaches a cell.
BROKEN_CALLBACK = """\
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

buffer = io.BytesIO()
plt.imsave(buffer, np.eye(8), format="png")
image = widgets.Image(value=buffer.getvalue(), format="png", width=64)
slider = widgets.IntSlider(value=0, min=0, max=7, description="dead slider")


def redraw(change):
    raise RuntimeError(f"cannot draw step {change['new']}")


slider.observe(redraw, names="value")
widgets.VBox([slider, image])"""

# A widget whose model is gone by the time the page renders it: "Error displaying widget: model not found".
CLOSED_WIDGET = """\
import ipywidgets as widgets
from IPython.display import display

gone = widgets.IntSlider(description="gone")
display(gone)
gone.close()"""

# What a student sees when the front end has no widget manager: the progress bar's text repr.
TEXT_FALLBACK = """\
from IPython.display import display

display({"text/plain": "HBox(children=(HTML(value='training'), FloatProgress(value=0.0, max=12.0), HTML(value='')))"},
        raw=True)"""

# The MPLBACKEND=Agg pitfall: plt.show() draws nothing into the page.
NO_FIGURE = """\
import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt

plt.plot([1, 2, 3])
plt.show()"""

CELL_ERROR = "1 / 0"


def _notebook(title: str, cells: list[tuple[str, list[str]]]) -> nbformat.NotebookNode:
    notebook = new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    notebook.cells = [new_markdown_cell(f"# {title}")]
    for source, tags in cells:
        notebook.cells.append(new_code_cell(source, metadata={"tags": tags} if tags else {}))
    return notebook


def healthy_notebook() -> nbformat.NotebookNode:
    """A progress bar, a figure and a slider that redraws a picture: everything should pass."""
    return _notebook("Healthy demo", [(PROGRESS, []), (FIGURE, []), (PICTURE_WIDGET, ["widget"])])


def broken_notebook() -> nbformat.NotebookNode:
    """One fault per cell; the final cell raises, so run-all reaches every other fault first."""
    return _notebook(
        "Broken demo",
        [
            (BROKEN_RENDER, ["widget"]),  # cell 1
            (BROKEN_CALLBACK, ["widget"]),  # cell 2
            (CLOSED_WIDGET, []),  # cell 3
            (TEXT_FALLBACK, []),  # cell 4
            (NO_FIGURE, []),  # cell 5
            (CELL_ERROR, []),  # cell 6
        ],
    )


GOOD_DIAGRAM = """\
A diagram that draws:

```mermaid
graph LR
    A["noise"] --> B["model"] --> C["picture"]
```"""

# An unclosed label: mermaid cannot parse it.
BROKEN_DIAGRAM = """\
A diagram with a typo:

```mermaid
graph LR
    A["noise] --> B["model"]
```"""


def diagram_notebook() -> nbformat.NotebookNode:
    """Markdown only: a diagram that draws (cell 1) and one that mermaid cannot parse (cell 2)."""
    notebook = _notebook("Diagram demo", [])
    notebook.cells += [new_markdown_cell(GOOD_DIAGRAM), new_markdown_cell(BROKEN_DIAGRAM)]
    return notebook


def write(notebook: nbformat.NotebookNode, path: Path) -> Path:
    """Write ``notebook`` to ``path`` (folders created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return path
