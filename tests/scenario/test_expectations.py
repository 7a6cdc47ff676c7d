import pytest

from minikf.scenario.expectations import Expectation


@pytest.mark.parametrize("text,metrics,ok", [
    ("accuracy >= 0.75", {"accuracy": 0.8}, True),
    ("accuracy >= 0.75", {"accuracy": 0.7}, False),
    ("p95_ms < 100", {"p95_ms": 99.9}, True),
    ("errors == 0", {"errors": 1}, False),
])
def test_check(text, metrics, ok):
    assert (Expectation.parse(text).check(metrics) is None) is ok


def test_missing_metric_is_named():
    assert "no metric 'accuracy'" in Expectation.parse("accuracy > 0").check({})


def test_unparsable():
    with pytest.raises(ValueError, match="METRIC OP NUMBER"):
        Expectation.parse("accuracy ~ 3")
