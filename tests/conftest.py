"""Test-wide settings: no hub access, one thread per process, a shared generated demo dataset."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    """A miniature AGDemo (8 training and 6 test identities) shared by the command-line training tests; a module
    that needs another layout defines its own ``data_root``."""
    from agreid.data import build_dataset

    root = str(tmp_path_factory.mktemp("agdemo"))
    build_dataset("AGDemo", root, num_train_ids=8, num_test_ids=6, images_per_view=4)
    return root
