"""One recipe per model family: how the course trains, saves and samples each kind of model.

Each module holds, for its family, the settings (a small frozen dataclass, with the course's preset in
one function), the training *step* written out in full, ``make_*`` (build the model), ``train_*`` (the
step inside :func:`course_utils.loop.fit`, checkpointed and resumable) and ``sample_*``:

* :mod:`~course_utils.recipes.autoencoder`: autoencoders, denoising autoencoders and VAEs (notebooks 01, 02);
* :mod:`~course_utils.recipes.gan`: GANs (notebook 04);
* :mod:`~course_utils.recipes.diffusion`: diffusion models and their weight average (notebook 05);
* :mod:`~course_utils.recipes.guided`: class-conditional diffusion sampled with classifier-free guidance
  (notebook 06, guided diffusion);
* :mod:`~course_utils.recipes.text`: the character model (notebook 09).

The critic's recipe lives beside its other duties in :mod:`course_utils.critic`. Notebook 08 builds
every model from the same presets as its own notebook, so their checkpoints fit.
"""
