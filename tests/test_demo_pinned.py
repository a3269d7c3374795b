"""The README's demo figures hold only for this demo: its config chain and the generated AGDemo data.

If this test fails, the demo changed: rerun ``python tools/train_net.py --config-file
configs/Demo/bagtricks_R18.yml`` and refresh README's demo table (and its timing), then update the
fingerprint below. Engine or model changes that move the figures are not caught here; README names
the commit its figures come from.
"""
import hashlib
import os

from agreid.data import build_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_FILES = ["configs/Demo/bagtricks_R18.yml", "configs/Base-bagtricks.yml",  # the config chain
              "agreid/data/datasets/agdemo_render.py", "agreid/data/datasets/synthetic.py"]  # the generator
DEMO_FINGERPRINT = "f661ba069c819ec8af33f18b71967485fd0bbe0d66c7180bf3e42992ce9b2cc7"


def demo_fingerprint(data_root: str) -> str:
    """SHA-256 over the demo's config chain, the generator's source and the generated AGDemo's lists.

    Image bytes are left out on purpose: JPEG encoders of other OpenCV builds may differ in the last bit.
    """
    h = hashlib.sha256()
    for rel in DEMO_FILES:
        with open(os.path.join(REPO, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read())
    build_dataset("AGDemo", data_root)
    base = os.path.join(data_root, "AGDemo")
    for dirpath, _, files in sorted(os.walk(base)):
        for name in sorted(f for f in files if not f.endswith((".jpg", ".png"))):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                h.update(os.path.relpath(path, base).encode() + b"\0" + f.read())
    return h.hexdigest()


def test_demo_config_and_data_are_the_ones_readme_reports(tmp_path):
    assert demo_fingerprint(str(tmp_path)) == DEMO_FINGERPRINT, (
        "configs/Demo or the AGDemo generator changed: rerun the demo, refresh README's table, update the fingerprint")
