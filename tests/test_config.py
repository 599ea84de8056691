import subprocess
import sys

import pytest
import torch

from course_utils import config


def test_profile_defaults_to_full(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert config.profile() == "full"
    assert config.by_profile(full=10, fast=1) == 10


def test_fast_profile_picks_fast_numbers(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "FAST")
    assert config.is_fast()
    assert config.by_profile(full=10, fast=1) == 1


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="full, fast"):
        config.profile()


def test_seed_everything_repeats_random_numbers():
    generator = config.seed_everything(3)
    first = (torch.rand(3), torch.rand(2, generator=generator))
    generator = config.seed_everything(3)
    second = (torch.rand(3), torch.rand(2, generator=generator))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    with pytest.raises(ValueError):
        config.seed_everything(-1)


def test_device_is_cpu_here_and_can_be_forced(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    assert config.device().type in ({expected} if expected else {"cpu", "mps"})
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="cpu, cuda, mps"):
        config.device()


def test_folders_follow_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "c"))
    assert config.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    assert config.checkpoint_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_a_relative_folder_counts_from_the_project_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", "my_models")
    assert config.checkpoint_dir() == tmp_path / "project" / "my_models"


def test_cpu_budget_reads_cgroup_quotas(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # Binder: 1 CPU
    assert config.cpu_budget(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert config.cpu_budget(tmp_path) >= 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert config.cpu_budget(v1) == 1  # half a core still gets one thread
    assert config.cpu_budget(tmp_path / "absent") >= 1


def test_use_threads_batched_never_exceeds_the_budget(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(config, "cpu_budget", lambda: 1)
    try:
        assert config.use_threads("batched") == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_use_threads_batched_restores_pytorchs_choice_after_sequential_work(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(config, "cpu_budget", lambda: 64)
    monkeypatch.setattr(config, "_TORCH_DEFAULT_THREADS", 2)
    try:
        assert config.use_threads("sequential") == 1 and torch.get_num_threads() == 1
        assert config.use_threads() == 2 and torch.get_num_threads() == 2  # PyTorch's choice, within the budget
    finally:
        torch.set_num_threads(before)


def test_use_threads_rejects_unknown_work():
    with pytest.raises(ValueError, match="sequential"):
        config.use_threads("tiny")


def test_an_optimizer_does_not_load_triton_without_a_gpu():
    # In a fresh process, as in a notebook: torch's first optimizer imports torch._dynamo, which imports Triton
    # (about 250 MB of shared libraries) wherever the wheel installed it, unless the course marks it absent.
    code = (
        "import sys, torch\n"
        "from course_utils import config  # as every notebook does\n"
        "torch.optim.Adam(torch.nn.Linear(2, 2).parameters())\n"
        "print(sys.modules.get('triton', 'absent'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() in ("None", "absent")


def test_triton_is_left_alone_with_a_gpu_or_once_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.leave_triton_unloaded_without_gpu() is False
    assert "triton" not in sys.modules
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sentinel = object()
    monkeypatch.setitem(sys.modules, "triton", sentinel)
    assert config.leave_triton_unloaded_without_gpu() is False
    assert sys.modules["triton"] is sentinel
    monkeypatch.delitem(sys.modules, "triton")
    assert config.leave_triton_unloaded_without_gpu() is True
    assert sys.modules["triton"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's, on Linux")
def test_release_freed_memory_gives_freed_blocks_back_to_the_system():
    # 250 MB in 64 KB tensors (below glibc's mmap threshold, so they live in malloc's heap); keeping every 50th
    # alive stops malloc from trimming the heap's top by itself, as a training run's leftovers do.
    psutil = pytest.importorskip("psutil")
    blocks = [torch.ones(16 * 1024) for _ in range(4000)]
    kept = blocks[::50]
    del blocks
    before = psutil.Process().memory_info().rss
    assert config.release_freed_memory() is True
    assert before - psutil.Process().memory_info().rss > 100 * 2**20
    assert len(kept) == 80
