"""course_utils: the tested helper package behind *Generative Models, hands-on*.

Import what a notebook needs, for example::

    from course_utils import config, data, plotting
    from course_utils.models import VAE
"""

__version__ = "0.1.0"
