"""``lrnn bench chunk_gla --config KEY=VALUE``: the launch_config overrides it parses, and the ones it refuses."""

import pytest
from lrnn.benchmarks.chunk_gla import config_entries


def test_config_entries_parse_integer_overrides():
    assert config_entries(["BV_O=64", "WARPS_O=4"]) == {"BV_O": 64, "WARPS_O": 4}
    assert config_entries([]) == {}


@pytest.mark.parametrize("entry", ["BV_O", "=64", "BV_O=sixty", "BV_O=-1"])
def test_config_entries_refuse_what_is_not_key_equals_integer(entry):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        config_entries([entry])
