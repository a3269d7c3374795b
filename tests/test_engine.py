"""End-to-end engine behaviour on a miniature AGDemo: outputs, resume, eval-only, two processes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine_helpers import (DEMO_CONFIG, REPO, assert_same_weights, ddp_train_worker, final_weights,
                            interrupt_then_resume, run_cli, tiny_opts)

from agreid.utils.checkpoint import load_checkpoint_file


@pytest.fixture(scope="module")
def plain_run(data_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("plain"))
    results = run_cli("--config-file", DEMO_CONFIG, *tiny_opts(data_root, out))
    return out, results


def test_training_writes_every_output(plain_run):
    out, results = plain_run
    for name in ["config.yaml", "metrics.json", "log.txt", "model_0001.pth", "model_0002.pth",
                 "model_final.pth", "model_best.pth", "last_checkpoint", "results.json", "results.md"]:
        assert os.path.isfile(os.path.join(out, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))
    assert set(results) == {"AGDemo/A2G", "AGDemo/G2A"}
    for metrics in results.values():
        assert 0 <= metrics["mAP"] <= 100 and 0 <= metrics["Rank-1"] <= 100
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.json"))]
    assert any("total_loss" in l for l in lines) and any("AGDemo/A2G/mAP" in l for l in lines)
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"
    ckpt = load_checkpoint_file(os.path.join(out, "model_final.pth"))
    assert {"optimizer", "scheduler", "rng_states", "epoch", "hooks", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 2


def test_eval_only_reproduces_final_metrics(plain_run, data_root, tmp_path):
    out, results = plain_run
    again = run_cli("--config-file", DEMO_CONFIG, "--eval-only",
                    *tiny_opts(data_root, str(tmp_path), **{"MODEL.WEIGHTS": os.path.join(out, "model_final.pth")}))
    assert again == results


def test_interrupted_run_resumes_to_identical_weights(plain_run, data_root, tmp_path):
    """An exception mid-epoch 2 (after epoch 1's checkpoint), then --resume, equals the plain run."""
    weights = interrupt_then_resume(DEMO_CONFIG, tiny_opts(data_root, str(tmp_path)),
                                    lambda t: t.epoch == 2 and t.iter == 7)
    assert_same_weights(weights, final_weights(plain_run[0]))


def test_killed_process_resumes_to_identical_weights(plain_run, data_root, tmp_path):
    """SIGKILL a real training process after its first checkpoint; --resume ends on the same weights."""
    out = str(tmp_path)
    opts = tiny_opts(data_root, out, **{"SOLVER.ITERS_PER_EPOCH": "3"})
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", DEMO_CONFIG, *opts]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = os.path.join(out, "model_0001.pth")
    deadline = time.time() + 120
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(first), "the run never wrote its first checkpoint"
    assert not os.path.exists(os.path.join(out, "model_final.pth")), "killed too late to test resume"
    resume = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", DEMO_CONFIG,
              "--resume", *opts]
    subprocess.run(resume, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert_same_weights(final_weights(out), final_weights(plain_run[0]))


def test_two_gloo_processes_train_identical_weights(data_root, tmp_path):
    from agreid.engine import launch

    result = tmp_path / "ddp.txt"
    opts = tiny_opts(data_root, str(tmp_path / "out"), **{"SOLVER.MAX_EPOCH": "2", "TEST.EVAL_PERIOD": "1"})
    launch(ddp_train_worker, 2, args=(opts, str(result)), device="cpu")
    world, same, n, *diff = result.read_text().split()
    assert (world, same, n) == ("2", "1", "2"), f"tensors differing between ranks: {diff}"
    assert os.path.isfile(tmp_path / "out" / "model_final.pth")


def test_rank_failure_ends_all_processes(tmp_path):
    from agreid.engine import launch

    start = time.time()
    from agreid.engine.launch import WorkerFailedError

    with pytest.raises(WorkerFailedError, match="(?s)rank 1 failed first.*ValueError: rank 1 failed"):
        launch(_fail_on_rank1, 2, args=(), device="cpu")
    assert time.time() - start < 60


def _fail_on_rank1():
    from agreid.utils import comm

    if comm.get_rank() == 1:
        raise ValueError("rank 1 failed")
    comm.synchronize()


def test_torchrun_env_launch(data_root, tmp_path):
    """Started by torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment), train_net joins via env://."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "out"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", os.path.join(REPO, "tools", "train_net.py"),
           "--config-file", DEMO_CONFIG, *tiny_opts(data_root, str(out), **{"SOLVER.MAX_EPOCH": "1"})]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    log = (out / "log.txt").read_text()
    assert "Rank 0 of 2" in log and (out / "log.txt.rank1").is_file()
    assert (out / "model_final.pth").is_file()
