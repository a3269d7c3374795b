"""Dataset adapters; importing this package registers every adapter in DATASET_REGISTRY."""
from agreid.data.datasets import custom  # noqa: F401
from agreid.data.datasets import agreid_v1, agreid_v2, agvpreid, mssl  # noqa: F401
from agreid.data.datasets import llcm, regdb, sysu_mm01  # noqa: F401
from agreid.data.datasets import cargo, cp2108, g2aps_reid, lagper  # noqa: F401
from agreid.data.records import ReIDDataset
from agreid.registries import DATASET_REGISTRY


@DATASET_REGISTRY.register("AGDemo")
def agdemo(root: str, seed: int = 0, num_train_ids: int = 60, num_test_ids: int = 40, images_per_view: int = 8,
           height: int = 128, width: int = 64) -> ReIDDataset:
    """Build the generated demo set (:class:`synthetic.AGDemo`), imported on use so that
    ``python -m agreid.data.datasets.synthetic`` does not find its own module already loaded."""
    from agreid.data.datasets.synthetic import AGDemo

    return AGDemo(root, seed=seed, num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                  images_per_view=images_per_view, height=height, width=width)
