"""``lrnn bench chunk_gla --config KEY=VALUE``: the launch_config overrides it parses, and the ones it refuses."""

import pytest
from lrnn.benchmarks.scan import config_entries


def test_config_entries_parse_integer_overrides():
    assert config_entries(["BV_O=64", "WARPS_O=4"]) == {"BV_O": 64, "WARPS_O": 4}
    assert config_entries([]) == {}


@pytest.mark.parametrize("entry", ["BV_O", "=64", "BV_O=sixty", "BV_O=-1"])
def test_config_entries_refuse_what_is_not_key_equals_integer(entry):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        config_entries([entry])


def test_a_kernels_own_entries_set_its_warps_and_stages_and_the_rest_keep_the_defaults():
    """``kernel_launch``: the state kernels read ``WARPS_H`` / ``STAGES_H``; a kernel without entries of its own,
    and an entry the config does not set, fall back to the common warps and Triton's default stages."""
    from lrnn.core.scan.gla import triton as face

    config = {**face.launch_config(128, 128), "WARPS_H": 8, "STAGES_H": 2, "STAGES_A": 1}
    assert face.kernel_launch(config, face._fwd_h_kernel) == {"num_warps": 8, "num_stages": 2}
    assert face.kernel_launch(config, face._bwd_dh_kernel) == {"num_warps": 8, "num_stages": 2}
    assert face.kernel_launch(config, face._fwd_a_kernel) == {"num_warps": 4, "num_stages": 1}
    assert face.kernel_launch(config, face._fwd_o_kernel) == {"num_warps": config["WARPS_O"]}
    assert face.kernel_launch(config, face._bwd_da_kernel) == {"num_warps": config["num_warps"]}
