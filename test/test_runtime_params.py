"""The one parameter table drives the typed config, config/mono_depth.yaml and the README's table.

No ROS here: the table and `NodeConfig` live in `depth_node.runtime.params`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from depth_node.runtime import params as P

ROOT = Path(__file__).resolve().parent.parent


def test_node_config_is_generated_typed_and_frozen() -> None:
    cfg = P.validate({"stride": 2.0, "odom.max_gap": 3, "camera_to_base": [0, 0, 1, 0, 0, 0, 1]})
    for s in P.SPECS:  # every parameter is a typed attribute: cfg.odom.max_gap for "odom.max_gap"
        value = cfg
        for part in s.name.split("."):
            value = getattr(value, part)
        want = tuple if isinstance(s.default, list) else type(s.default)
        assert type(value) is want, f"{s.name}: {type(value).__name__}, not {want.__name__}"
    assert cfg.stride == 2 and cfg.odom.max_gap == 3.0 and cfg.camera_to_base == (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.stride = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.odom.max_gap = 2.0  # type: ignore[misc]
    assert P.validate(cfg.values()) == cfg and set(cfg.values()) == {s.name for s in P.SPECS}


def test_defaults_config_equals_the_table() -> None:
    assert P.NodeConfig().values() == P.defaults() == P.validate({}).values()


def test_shipped_yaml_is_the_generated_one() -> None:
    text = (ROOT / "config" / "mono_depth.yaml").read_text()
    assert text == P.yaml_text(), ("config/mono_depth.yaml is stale: regenerate it with "
                                   "`python -m depth_node.runtime.params > config/mono_depth.yaml`")
    assert P.params_from_yaml(yaml.safe_load(text)) == P.defaults()


def test_readme_parameter_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert P.docs_table() in readme, "README's parameter table is stale: paste depth_node.runtime.params.docs_table()"


def test_vocabularies_are_written_once() -> None:
    from depth_node.geometry.scale import SCALE_SOURCES
    from depth_node.inference import factory, names

    assert P.SPEC_BY_NAME["backend"].choices == ("auto", *names.BACKENDS) and factory.BACKENDS is names.BACKENDS
    assert P.SPEC_BY_NAME["precision"].choices == ("auto", *names.PRECISIONS)
    assert P.SPEC_BY_NAME["scale_source"].choices == ("auto", *SCALE_SOURCES)


def test_unknown_parameters_are_named_with_the_nearest_known_one() -> None:
    with pytest.raises(P.ParamError) as e:
        P.validate({"scale_sorce": "fixed", "stride": 2, "zzz_unrelated": 1})
    text = str(e.value)
    assert "unknown parameter 'scale_sorce' (did you mean scale_source?)" in text
    assert "unknown parameter 'zzz_unrelated'" in text and "did you mean" not in text.split("zzz_unrelated")[1]
    # parameters every rclpy node has are valid in a params file beside the node's own
    assert P.validate({"use_sim_time": True, "qos_overrides./image.subscription.depth": 5}).stride == 1


def test_a_file_that_is_not_a_ros_params_file_is_refused() -> None:
    for data in ({"scale_source": "fixed"}, ["scale_source"], None, {"node": {"params": {}}}):
        with pytest.raises(P.ParamError, match="ros__parameters"):
            P.params_from_yaml(data)
    found = P.params_from_yaml({"/**": {"ros__parameters": {"odom": {"max_gap": 2.0}}}})
    assert found == {"odom.max_gap": 2.0}
