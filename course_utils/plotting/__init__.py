"""Pictures instead of walls of numbers.

Every function draws into a new figure (or the ``ax`` it is given) and returns the
``matplotlib.figure.Figure``; none calls ``plt.show()``. In a notebook, end the cell with
``plt.show()`` so that the figure appears exactly once.

One module per part of the course (``core``, ``autoencoders``, ``gans``, ``diffusion``, ``evaluation``); every
function is also reachable as ``plotting.<name>``, which is how the notebooks call them.
"""

from course_utils.plotting.autoencoders import (
    interpolate_codes,
    latent_grid,
    plot_interpolation,
    plot_latent_manifold,
    show_reconstructions,
)
from course_utils.plotting.core import (
    image_grid,
    plot_history,
    plot_latent_scatter,
    plot_probabilities,
    show_images,
    show_source,
)
from course_utils.plotting.diffusion import (
    plot_forward_process,
    plot_guidance_frontier,
    plot_guidance_sweep,
    plot_schedules,
    plot_trajectory,
)
from course_utils.plotting.evaluation import plot_gaussian_clouds, plot_model_comparison, show_nearest_neighbours
from course_utils.plotting.gans import (
    LivePlot,
    plot_class_histograms,
    plot_gan_history,
    plot_gan_progress,
    plot_snapshots,
    snapshot_animation,
)

__all__ = [
    "image_grid",
    "show_images",
    "plot_history",
    "plot_probabilities",
    "show_source",
    "plot_latent_scatter",
    "show_reconstructions",
    "interpolate_codes",
    "plot_interpolation",
    "latent_grid",
    "plot_latent_manifold",
    "plot_gan_history",
    "plot_snapshots",
    "snapshot_animation",
    "plot_gan_progress",
    "LivePlot",
    "plot_class_histograms",
    "plot_forward_process",
    "plot_schedules",
    "plot_trajectory",
    "plot_guidance_frontier",
    "plot_guidance_sweep",
    "plot_gaussian_clouds",
    "show_nearest_neighbours",
    "plot_model_comparison",
]
