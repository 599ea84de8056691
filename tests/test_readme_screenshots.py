"""tools/readme_screenshots.py: it refuses a folder without a full-profile diffusion model before it starts anything."""

import pytest

from tools import readme_screenshots


def test_a_folder_without_a_full_profile_model_is_refused(tmp_path):
    (tmp_path / "diffusion-digits-8x8-fast.pt").write_bytes(b"")  # a fast-profile model is not what README shows
    with pytest.raises(SystemExit, match="no full-profile diffusion model"):
        readme_screenshots.main(["--checkpoints", str(tmp_path)])


def test_it_photographs_notebook_05_into_readmes_picture():
    assert readme_screenshots.NOTEBOOK == "notebooks/05_diffusion.ipynb"
    assert readme_screenshots.TARGET.name == "jupyterlab-timestep-explorer.png"
    assert (readme_screenshots.PROJECT_ROOT / readme_screenshots.NOTEBOOK).exists()
