"""Registry registration, lookup and the miss message."""
import pytest

from agreid.utils.registry import Registry


def test_register_and_lookup_miss_lists_names():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    reg.register(lambda: 1, name="beta")
    assert reg.get("Alpha") is Alpha
    assert "beta" in reg and len(reg) == 2
    with pytest.raises(KeyError) as e:
        reg.get("Alpah")
    msg = str(e.value)
    assert "THING" in msg and "Alpha, beta" in msg and "Did you mean 'Alpha'" in msg


def test_duplicate_name_rejected():
    reg = Registry("X")
    reg.register(int, name="a")
    reg.register(int, name="a")
    with pytest.raises(KeyError, match="already registered"):
        reg.register(float, name="a")


def test_builtin_registries_populated():
    import agreid.data.datasets  # noqa: F401
    import agreid.evaluation  # noqa: F401
    import agreid.modeling  # noqa: F401
    from agreid.registries import (BACKBONE_REGISTRY, DATASET_REGISTRY, EVALUATOR_REGISTRY, HEAD_REGISTRY,
                                   LOSS_REGISTRY, META_ARCH_REGISTRY)
    import agreid.data.samplers  # noqa: F401
    from agreid.registries import SAMPLER_REGISTRY

    assert {"resnet18", "resnet50", "vit"} <= set(BACKBONE_REGISTRY)
    assert "AGDemo" in DATASET_REGISTRY and "CustomCSV" in DATASET_REGISTRY
    assert "Baseline" in META_ARCH_REGISTRY and "BNNeckHead" in HEAD_REGISTRY
    assert {"CrossEntropyLoss", "TripletLoss"} <= set(LOSS_REGISTRY)
    assert {"IdentitySampler", "ViewBalancedIdentitySampler"} <= set(SAMPLER_REGISTRY)
    assert "ReidEvaluator" in EVALUATOR_REGISTRY
