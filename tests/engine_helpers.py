"""Shared pieces of the engine tests: a tiny demo config and a two-process worker."""
import importlib.util
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(REPO, "configs", "Demo", "bagtricks_R18.yml")
TINY_DATA = ["DATASETS.OPTIONS", '["num_train_ids=8", "num_test_ids=6", "images_per_view=4"]']


def tiny_opts(data_root: str, out_dir: str, **extra) -> list:
    """Overrides turning the demo config into a seconds-long run on a miniature AGDemo."""
    opts = {"INPUT.SIZE_TRAIN": "[64, 32]", "INPUT.SIZE_TEST": "[64, 32]", "INPUT.PADDING.SIZE": "4",
            "DATASETS.ROOT_DIR": data_root, "SOLVER.IMS_PER_BATCH": "16", "DATALOADER.NUM_INSTANCE": "4",
            "DATALOADER.NUM_WORKERS": "0", "SOLVER.MAX_EPOCH": "3", "SOLVER.ITERS_PER_EPOCH": "3",
            "SOLVER.STEPS": "[2]", "SOLVER.WARMUP_ITERS": "2", "SOLVER.CHECKPOINT_PERIOD": "1",
            "TEST.EVAL_PERIOD": "2", "TEST.IMS_PER_BATCH": "32", "OUTPUT_DIR": out_dir,
            "MODEL.DEVICE": "cpu"}
    opts.update(extra)
    flat = list(TINY_DATA)
    for k, v in opts.items():
        flat += [k, str(v)]
    return flat


def model_config(path: str, **overrides):
    """A config file's values, plus ``A__B=value`` overrides (``__`` stands for the dots of a key)."""
    from agreid.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_list([x for kv in overrides.items() for x in (kv[0].replace("__", "."), str(kv[1]))])
    return cfg


def load_script(relpath: str):
    """Import a repository script (tools/ and scripts/ are not packages) as a module."""
    name = os.path.splitext(os.path.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relpath))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_train_net():
    """Import tools/train_net.py as a module."""
    return load_script(os.path.join("tools", "train_net.py"))


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    from agreid.utils.checkpoint import unwrap_model

    sd = unwrap_model(model).state_dict()
    return torch.cat([sd[k].detach().float().flatten() for k in sorted(sd)])


def differing_tensors(model: torch.nn.Module, other: torch.Tensor) -> list:
    """Names of the state-dict tensors whose values differ from the flat vector ``other``."""
    from agreid.utils.checkpoint import unwrap_model

    sd, names, offset = unwrap_model(model).state_dict(), [], 0
    for k in sorted(sd):
        n = sd[k].numel()
        if not torch.equal(sd[k].detach().float().flatten(), other[offset:offset + n]):
            names.append(k)
        offset += n
    return names


def ddp_train_worker(opts: list, result_path: str, config: str = DEMO_CONFIG) -> None:
    """Train ``config`` on every rank, then check on rank 0 that all ranks hold identical weights."""
    import argparse

    from agreid.engine import DefaultTrainer, default_setup, setup_cfg
    from agreid.utils import comm

    torch.set_num_threads(1)
    cfg = default_setup(setup_cfg(config, opts), argparse.Namespace(eval_only=False))
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    params = comm.all_gather_tensor(flat_params(trainer.model).unsqueeze(0))
    if comm.is_main_process():
        same = all(torch.equal(params[0], p) for p in params[1:])
        diff = [] if same else differing_tensors(trainer.model, params[1][0])
        with open(result_path, "w") as f:
            f.write(f"{comm.get_world_size()} {int(same)} {len(params)} {','.join(diff[:10])}")


def run_cli(*argv):
    """``tools/train_net.py`` with these arguments, in this process; returns its results."""
    train_net = load_train_net()
    return train_net.main(train_net.default_argument_parser().parse_args(list(argv)))


def final_weights(out_dir: str) -> dict:
    from agreid.utils.checkpoint import load_checkpoint_file

    return load_checkpoint_file(os.path.join(out_dir, "model_final.pth"))["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def interrupt_then_resume(config: str, opts: list, stop_when) -> dict:
    """Train ``config`` until ``stop_when(trainer)`` holds after a step (a simulated kill), then ``--resume`` from
    the command line; returns the final weights. The caller compares them with an uninterrupted run's."""
    import argparse

    import pytest

    from agreid.engine import DefaultTrainer, HookBase, default_setup, setup_cfg

    class Crash(HookBase):
        def after_step(self):
            if stop_when(self.trainer):
                raise KeyboardInterrupt("simulated kill")

    cfg = default_setup(setup_cfg(config, opts), argparse.Namespace())
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks([Crash()])
    trainer.resume_or_load(resume=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "model_final.pth")), "interrupted too late"
    run_cli("--config-file", config, "--resume", *opts)
    return final_weights(cfg.OUTPUT_DIR)
