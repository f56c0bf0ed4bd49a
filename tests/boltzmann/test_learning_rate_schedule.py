"""``learning_rate_schedule="linear"``: epoch e of fit trains at ``learning_rate * (1 - e / n_iter)``,
through the fused kernels and through the autograd loop alike; partial_fit takes the constant rate."""
import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from fastseq.boltzmann import RBM, BetaRBM, GaussianRBM

RATE = 0.06


def _binary(rows=60, cols=7, seed=0):
    return (np.random.default_rng(seed).random((rows, cols)) < 0.4).astype(np.float32)


def _unit(rows=60, cols=7, seed=0):
    return np.random.default_rng(seed).beta(2.0, 3.0, (rows, cols)).astype(np.float32)


CASES = [(RBM, {}, _binary), (RBM, {"optimizer": "adam"}, _binary), (RBM, {"tempering": 2}, _binary),
         (GaussianRBM, {"sigma": 0.5}, _binary), (BetaRBM, {}, _unit)]


def _rates_seen(monkeypatch, cls):
    """Record, at the start of every epoch, the rate the kernels read and the optimizer's rates."""
    seen = []
    original = cls._epoch

    def spy(self, data, epoch):
        seen.append((self._rate, [g["lr"] for g in self._opt.param_groups]))
        return original(self, data, epoch)

    monkeypatch.setattr(cls, "_epoch", spy)
    return seen


@pytest.mark.parametrize("cls, extra, data", CASES)
def test_each_epoch_of_fit_trains_at_the_linearly_falling_rate(monkeypatch, cls, extra, data):
    seen = _rates_seen(monkeypatch, cls)
    cls(n_components=3, n_iter=4, learning_rate=RATE, learning_rate_schedule="linear", batch_size=10,
        random_state=0, **extra).fit(data())
    want = [RATE * (1 - e / 4) for e in range(4)]
    assert [r for r, _ in seen] == pytest.approx(want, rel=1e-12)
    for (_, groups), rate in zip(seen, want):
        assert groups == pytest.approx([rate] * len(groups), rel=1e-12)


@pytest.mark.parametrize("cls, extra, data", CASES)
def test_a_constant_schedule_keeps_the_rate(monkeypatch, cls, extra, data):
    seen = _rates_seen(monkeypatch, cls)
    cls(n_components=3, n_iter=3, learning_rate=RATE, batch_size=10, random_state=0, **extra).fit(data())
    assert [r for r, _ in seen] == [RATE] * 3


@pytest.mark.parametrize("cls, extra, data", CASES)
def test_the_schedule_is_what_trains(cls, extra, data):
    """A linear fit equals the same fit made epoch by epoch at the rates set by hand, and
    differs from the constant one (so the rate the kernels read is the scheduled one)."""
    X = data()
    common = dict(n_components=3, n_iter=3, learning_rate=RATE, batch_size=10, random_state=0, **extra)
    linear = cls(learning_rate_schedule="linear", **common).fit(X)
    constant = cls(**common).fit(X)
    by_hand = cls(**{**common, "n_iter": 1}).fit(X)
    with by_hand._threads():
        train = by_hand._training_data(by_hand._validate(X))
        for epoch, rate in ((1, RATE * 2 / 3), (2, RATE / 3)):
            by_hand._use_rate(rate)
            by_hand._epoch(train, epoch)
    for name, p in linear.params_.items():
        assert torch.equal(p, by_hand.params_[name]), name
    assert not np.allclose(linear.components_, constant.components_, rtol=0, atol=1e-7)


def test_partial_fit_after_a_scheduled_fit_takes_the_constant_rate():
    X = _binary()
    model = RBM(n_components=3, n_iter=3, learning_rate=RATE, learning_rate_schedule="linear",
                random_state=0).fit(X)
    assert model._rate == pytest.approx(RATE / 3)
    model.partial_fit(X[:10])
    assert model._rate == RATE and all(g["lr"] == RATE for g in model._opt.param_groups)


def test_the_schedule_is_a_parameter_that_saves_and_loads(tmp_path):
    model = RBM(n_components=3, n_iter=2, learning_rate_schedule="linear", random_state=0).fit(_binary())
    assert model.get_params()["learning_rate_schedule"] == "linear"
    model.save(tmp_path / "m.safetensors")
    assert RBM.load(tmp_path / "m.safetensors").learning_rate_schedule == "linear"


def test_an_unknown_schedule_is_refused_by_name():
    with pytest.raises(InvalidParameterError, match="learning_rate_schedule"):
        RBM(n_components=3, learning_rate_schedule="cosine").fit(_binary())
