"""Every bad input to tools/train_net.py ends as one clear line (exit code 2) and leaves OUTPUT_DIR as it was."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from engine_helpers import DEMO_CONFIG, REPO, load_train_net, tiny_opts


@pytest.fixture(scope="module")
def good_run(data_root, tmp_path_factory):
    """A finished tiny run whose folder every failing command below points at."""
    out = str(tmp_path_factory.mktemp("good"))
    train_net = load_train_net()
    train_net.main(train_net.default_argument_parser().parse_args(
        ["--config-file", DEMO_CONFIG, *tiny_opts(data_root, out, **{"SOLVER.MAX_EPOCH": "1"})]))
    from agreid.utils.logger import hold_log_records

    hold_log_records()  # as a new process would: the finished run's log file is closed
    return out


def snapshot(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def _bad_files(tmp, good):
    """Checkpoint-like files for the weight cases."""
    files = {}
    final = os.path.join(good, "model_final.pth")
    with open(final, "rb") as f:
        data = f.read()
    files["truncated"] = os.path.join(tmp, "truncated.pth")
    with open(files["truncated"], "wb") as f:
        f.write(data[: len(data) // 3])
    files["pickled"] = os.path.join(tmp, "pickled.pth")
    torch.save({"model": torch.nn.Linear(2, 2)}, files["pickled"])
    files["nomatch"] = os.path.join(tmp, "nomatch.pth")
    torch.save({"foo.weight": torch.zeros(3)}, files["nomatch"])
    files["dir"] = os.path.join(tmp, "a_folder.pth")
    os.makedirs(files["dir"], exist_ok=True)
    files["notdir"] = os.path.join(tmp, "plain_file")
    with open(files["notdir"], "w") as f:
        f.write("x")
    files["final"] = final
    return files


LAGPER = ["DATASETS.NAMES", "['LAGPeR']", "DATASETS.TESTS", "['LAGPeR']", "DATASETS.OPTIONS", "[]"]

# (id, argv builder, expected text in the line); the builder gets (data_root, out, files)
CASES = [
    ("missing-config", lambda d, o, f: ["--config-file", "/no/such.yml"], "Config file not found"),
    ("unknown-key", lambda d, o, f: [*_base(d, o), "SOLVER.BASE_LRR", "0.1"], "Did you mean SOLVER.BASE_LR"),
    ("wrong-type", lambda d, o, f: [*_base(d, o), "SOLVER.MAX_EPOCH", "ten"], "SOLVER.MAX_EPOCH expects int"),
    ("list-element-type", lambda d, o, f: [*_base(d, o), "INPUT.SIZE_TRAIN", "abc"], "INPUT.SIZE_TRAIN expects a list of int"),
    ("odd-overrides", lambda d, o, f: [*_base(d, o), "SOLVER.MAX_EPOCH"], "KEY VALUE pairs"),
    ("eval-without-weights", lambda d, o, f: ["--eval-only", *_base(d, o)], "--eval-only needs MODEL.WEIGHTS"),
    ("missing-weights", lambda d, o, f: ["--eval-only", *_base(d, o), "MODEL.WEIGHTS", "/missing/file.pth"],
     "Checkpoint file not found: /missing/file.pth"),
    ("weights-is-folder", lambda d, o, f: ["--eval-only", *_base(d, o), "MODEL.WEIGHTS", f["dir"]], "is not a file"),
    ("truncated-weights", lambda d, o, f: ["--eval-only", *_base(d, o), "MODEL.WEIGHTS", f["truncated"]],
     "corrupt, truncated"),
    ("pickled-weights", lambda d, o, f: ["--eval-only", *_base(d, o), "MODEL.WEIGHTS", f["pickled"]],
     "pickled Python objects"),
    ("weights-of-another-backbone", lambda d, o, f: ["--eval-only", *_base(d, o), "MODEL.WEIGHTS", f["final"],
                                                     "MODEL.BACKBONE.NAME", "resnet50"], "does not fit the model"),
    ("weights-no-matching-key", lambda d, o, f: [*_base(d, o), "MODEL.WEIGHTS", f["nomatch"]], "No tensor"),
    ("unknown-dataset", lambda d, o, f: [*_base(d, o), "DATASETS.NAMES", "['Nope']"], "No object named 'Nope'"),
    ("unknown-backbone", lambda d, o, f: [*_base(d, o), "MODEL.BACKBONE.NAME", "resnet51"], "Did you mean"),
    ("impossible-batch", lambda d, o, f: [*_base(d, o), "SOLVER.IMS_PER_BATCH", "6"], "IMS_PER_BATCH"),
    ("unknown-protocol", lambda d, o, f: [*_base(d, o), "DATASETS.TESTS", "['AGDemo/A2X']"], "no protocol 'A2X'"),
    ("unknown-test-dataset", lambda d, o, f: [*_base(d, o), "DATASETS.TESTS", "['AGDemo', 'Nope']"],
     "No object named 'Nope'"),
    ("missing-dataset-root", lambda d, o, f: [*_base("/no/such/root", o), *LAGPER],
     "/no/such/root"),
    ("unwritable-output", lambda d, o, f: [*_base(d, os.path.join(f["notdir"], "out"))], "OUTPUT_DIR"),
    ("bad-device", lambda d, o, f: [*_base(d, o), "MODEL.DEVICE", "tpu"], "MODEL.DEVICE"),
    ("too-many-gpus", lambda d, o, f: ["--num-gpus", "64", *_base(d, o), "MODEL.DEVICE", "cuda"], "GPU"),
    ("partial-load-off-by-default", lambda d, o, f: [*_base(d, o), "MODEL.WEIGHTS", f["final"],
                                                     "MODEL.BACKBONE.NAME", "resnet50"], "ALLOW_PARTIAL_WEIGHTS"),
]


def _base(data_root, out):
    return ["--config-file", DEMO_CONFIG, *tiny_opts(data_root, out, **{"SOLVER.MAX_EPOCH": "1"})]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_keeps_output_dir(case, data_root, good_run, tmp_path, capfd):
    name, build, expected = case
    files = _bad_files(str(tmp_path), good_run)
    before = snapshot(good_run)
    train_net = load_train_net()
    with pytest.raises(SystemExit) as exit_info:
        train_net.cli(build(data_root, good_run, files))
    assert exit_info.value.code == 2, name
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err, captured.out + captured.err
    assert_one_error_line(captured.err, expected)
    assert snapshot(good_run) == before, f"{name} changed the earlier run's OUTPUT_DIR"


def assert_one_error_line(err, expected, starts=""):
    """One ``Name: message`` line naming the problem (a DatasetError may append its expected layout)."""
    heads = [ln for ln in err.splitlines() if re.match(r"^[A-Z]\w*(Error|Exception): ", ln)]
    assert len(heads) == 1 and expected in heads[0] and heads[0].startswith(starts), err
    assert err.splitlines()[0] == heads[0], err


def test_dataset_error_under_two_processes_is_the_failing_rank_line(good_run, tmp_path):
    """Spawned ranks need an importable entry point, so this one runs train_net.py as a command."""
    before = snapshot(good_run)
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--num-gpus", "2",
           *_base("/no/such/root", good_run), *LAGPER, "MODEL.DEVICE", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert_one_error_line(proc.stderr, "/no/such/root", starts="DatasetError: rank ")
    assert snapshot(good_run) == before


def test_corrupt_training_image_is_one_line(data_root, tmp_path, capfd):
    root = str(tmp_path / "data")
    shutil.copytree(data_root, root)
    train_dir = os.path.join(root, "AGDemo", "images", "train")
    victim = sorted(f for f in os.listdir(train_dir) if f.endswith((".jpg", ".png")))[0]
    with open(os.path.join(train_dir, victim), "wb") as f:
        f.write(b"not an image")
    train_net = load_train_net()
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        train_net.cli(["--config-file", DEMO_CONFIG, *tiny_opts(root, out, **{"DATALOADER.NUM_WORKERS": "1"})])
    assert exit_info.value.code == 2
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and victim in lines[0] and lines[0].startswith("CorruptImageError: Image"), captured.err


def test_evaluation_error_on_last_epoch_keeps_the_final_checkpoint(data_root, tmp_path, monkeypatch):
    from agreid.engine import DefaultTrainer

    def broken(self):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(DefaultTrainer, "evaluate", broken)
    train_net = load_train_net()
    out = str(tmp_path / "out")
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train_net.main(train_net.default_argument_parser().parse_args(
            ["--config-file", DEMO_CONFIG, *tiny_opts(data_root, out, **{"SOLVER.MAX_EPOCH": "1"})]))
    assert os.path.isfile(os.path.join(out, "model_final.pth"))


def _kill_rank1():
    from agreid.utils import comm

    if comm.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    comm.synchronize()


def test_rank_killed_by_a_signal_is_reported_as_such():
    from agreid.engine import launch
    from agreid.engine.launch import WorkerFailedError

    with pytest.raises(WorkerFailedError, match="^rank 1 was killed by SIGKILL$"):
        launch(_kill_rank1, 2, device="cpu")


def test_resume_removes_stale_temporary_files(tmp_path):
    from agreid.utils.checkpoint import Checkpointer

    model = torch.nn.Linear(2, 2)
    ck = Checkpointer(model, str(tmp_path))
    ck.save("model_0001", epoch=0)
    for name in ["model_0002.pth.abc_123.tmp", "last_checkpoint.x1.tmp"]:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / "notes.tmp").write_text("user file")
    ck.resume_or_load("", resume=True)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.pth", "notes.tmp"]


def test_launch_device_follows_model_device(monkeypatch):
    from agreid.engine.launch import resolve_launch_device
    from agreid.utils.errors import LaunchError

    assert resolve_launch_device("cpu", 4) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_launch_device("cpu", 2) == "cpu"
    assert resolve_launch_device("auto", 1) == "cuda"
    with pytest.raises(LaunchError, match=r"--num-gpus 2 .* only 1 GPU\(s\) are visible.*MODEL.DEVICE cpu"):
        resolve_launch_device("auto", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_launch_device("auto", 2) == "cpu"
    with pytest.raises(LaunchError, match="no GPU"):
        resolve_launch_device("cuda", 1)
