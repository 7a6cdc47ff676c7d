"""`--param key=value`: YAML scalars, and one line for what cannot be one."""

import pytest

from minikf.commands.common import parse_params
from minikf.runtime.errors import MinikfError


def test_values_are_yaml_scalars_and_urls_stay_text():
    assert parse_params(["epochs=3", "lr=0.5", "sample=false", "mirrors=http://a:1/,http://b/",
                         "name="]) == {"epochs": 3, "lr": 0.5, "sample": False,
                                       "mirrors": "http://a:1/,http://b/", "name": ""}


@pytest.mark.parametrize(("pair", "message"), [
    ("mirrors=[oops", "--param mirrors=[oops: not a YAML value (expected ',' or ']', but got "
                      "'<stream end>'); quote it to pass it as text: mirrors='\"[oops\"'"),
    ("a=*x", "--param a=*x: not a YAML value (found undefined alias 'x'); quote it to pass it as "
             "text: a='\"*x\"'"),
    ("=1", "--param '=1': expected key=value"),
    ("novalue", "--param 'novalue': expected key=value"),
])
def test_what_is_not_a_value_is_one_line(pair, message):
    with pytest.raises(MinikfError) as info:
        parse_params([pair])
    assert info.value.message == message and info.value.exit_code == 2
