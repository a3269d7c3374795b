"""Config inheritance, overrides and their error messages."""
import os

import pytest

from agreid.config import ConfigError, get_cfg
from agreid.engine import setup_cfg


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_base_inheritance_relative_and_deep_merge(tmp_path):
    write(tmp_path / "Base.yml", "SOLVER:\n  BASE_LR: 0.1\n  MAX_EPOCH: 7\nMODEL:\n  BACKBONE:\n    NAME: resnet18\n")
    write(tmp_path / "mid" / "Mid.yml", "_BASE_: ../Base.yml\nSOLVER:\n  MAX_EPOCH: 9\n")
    leaf = write(tmp_path / "mid" / "leaf" / "leaf.yml", "_BASE_: ../Mid.yml\nSOLVER:\n  IMS_PER_BATCH: 8\n")
    cfg = setup_cfg(leaf)
    assert cfg.SOLVER.BASE_LR == 0.1
    assert cfg.SOLVER.MAX_EPOCH == 9
    assert cfg.SOLVER.IMS_PER_BATCH == 8
    assert cfg.MODEL.BACKBONE.NAME == "resnet18"
    assert cfg.SOLVER.STEPS == get_cfg().SOLVER.STEPS


def test_base_cycle_and_missing_file(tmp_path):
    a = write(tmp_path / "a.yml", "_BASE_: b.yml\n")
    write(tmp_path / "b.yml", "_BASE_: a.yml\n")
    with pytest.raises(ConfigError, match="cycle"):
        setup_cfg(a)
    c = write(tmp_path / "c.yml", "_BASE_: nowhere.yml\n")
    with pytest.raises(ConfigError, match="nowhere.yml"):
        setup_cfg(c)
    with pytest.raises(ConfigError, match="not found"):
        setup_cfg(str(tmp_path / "absent.yml"))


def test_unknown_key_in_file_suggests_closest(tmp_path):
    f = write(tmp_path / "bad.yml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError, match="Did you mean SOLVER.BASE_LR"):
        setup_cfg(f)


def test_overrides_types_and_errors():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "1", "TEST.FLIP", "true", "SOLVER.STEPS", "[3, 5]",
                         "DATASETS.NAMES", "AGDemo", "OUTPUT_DIR", "out/x"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.TEST.FLIP is True
    assert list(cfg.SOLVER.STEPS) == [3, 5]
    assert tuple(cfg.DATASETS.NAMES) == ("AGDemo",)
    assert cfg.OUTPUT_DIR == "out/x"
    with pytest.raises(ConfigError, match="Did you mean SOLVER.MAX_EPOCH"):
        cfg.merge_from_list(["SOLVER.MAX_EPOCHS", "3"])
    with pytest.raises(ConfigError, match="expects int"):
        cfg.merge_from_list(["SOLVER.MAX_EPOCH", "three"])
    with pytest.raises(ConfigError, match="true/false"):
        cfg.merge_from_list(["TEST.FLIP", "3"])
    with pytest.raises(ConfigError, match="pairs"):
        cfg.merge_from_list(["SOLVER.MAX_EPOCH"])
    with pytest.raises(ConfigError, match="section"):
        cfg.merge_from_list(["SOLVER", "3"])
    with pytest.raises(ConfigError, match="_BASE_"):
        cfg.merge_from_list(["_BASE_", "x.yml"])


def test_diff_against_defaults():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.5"])
    assert cfg.diff(get_cfg()) == ["SOLVER.BASE_LR: 0.00035 -> 0.5"]


def test_shipped_configs_load(repo_root):
    """Every shipped config loads and names a registered meta-architecture, sampler and dataset."""
    from agreid.registries import DATASET_REGISTRY, META_ARCH_REGISTRY, SAMPLER_REGISTRY

    import agreid.data.datasets  # noqa: F401  (registration)
    import agreid.data.samplers  # noqa: F401
    import agreid.modeling  # noqa: F401

    for folder, _, files in os.walk(os.path.join(repo_root, "configs")):
        for f in files:
            if f.endswith(".yml"):
                cfg = setup_cfg(os.path.join(folder, f))
                assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY, f
                assert cfg.DATALOADER.SAMPLER_TRAIN in SAMPLER_REGISTRY, f
                for name in list(cfg.DATASETS.NAMES) + [t.split("/")[0] for t in cfg.DATASETS.TESTS]:
                    assert name in DATASET_REGISTRY, (f, name)
