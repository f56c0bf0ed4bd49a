"""Exact behaviour of layer-wise training and fine-tuning.

Pins, on tiny synthetic 8 x 8 images: parameters and epoch losses equal to a plain PyTorch
reference loop (same seed, same Adam steps, mini-batches from one shared generator), the
defaults of both functions, the fields of each report (seconds, images per second), the
activations of the layer below being computed once for every image however many there
are, the progress bar's total, steps, description and vanishing, the images being copied onto the
model's device, and the argument errors word for word.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from fastseq.conv import ConvAutoencoder, ConvConfig, fine_tune, train_layerwise
from fastseq.conv.training import LayerReport

CONFIG = ConvConfig(8, (4, 3), (2, 1))


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 8, 8)).astype(np.float32)


def _reference_fit(params, fn, x, epochs, batch_size, lr, gen):
    """Plain Adam over shuffled mini-batches; each epoch's loss is the per-image mean."""
    opt = torch.optim.Adam(params, lr=lr)
    n, losses = x.shape[0], []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for lo in range(0, n, batch_size):
            xb = x[order[lo:lo + batch_size]]
            loss = ((fn(xb) - xb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        losses.append(total / n)
    return losses


def _mse(fn, x):
    with torch.no_grad():
        return float(((fn(x) - x) ** 2).sum()) / x.numel()


def _assert_same_weights(a: ConvAutoencoder, b: ConvAutoencoder):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_layerwise_training_matches_a_plain_reference_loop():
    x_np = _images(11)
    net = ConvAutoencoder(CONFIG, seed=3)
    reports = train_layerwise(net, x_np, epochs=2, batch_size=4, learning_rate=5e-3, seed=7)

    ref = ConvAutoencoder(CONFIG, seed=3)
    gen = torch.Generator().manual_seed(7)
    x = torch.tensor(x_np)[:, None]
    want = []
    for i in range(CONFIG.depth):
        with torch.no_grad():
            inp = x if i == 0 else ref.up(x, i)[-1]

        def fn(xb, i=i):
            return ref.down_layer(i, ref.up_layer(i, xb))

        before = _mse(fn, inp)
        params = [*ref.encoders[i].parameters(), *ref.decoders[i].parameters()]
        losses = _reference_fit(params, fn, inp, 2, 4, 5e-3, gen)
        want.append((i + 1, before, _mse(fn, inp), losses))

    _assert_same_weights(net, ref)
    got = [(r.layer, r.error_before, r.error_after, r.epoch_losses) for r in reports]
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0] and g[3] == w[3]
        assert g[1] == pytest.approx(w[1], rel=1e-6) and g[2] == pytest.approx(w[2], rel=1e-6)


def test_fine_tuning_matches_a_plain_reference_loop():
    x_np = _images(7)
    net = ConvAutoencoder(CONFIG, seed=1)
    rep = fine_tune(net, x_np, epochs=3, batch_size=3, learning_rate=2e-3, seed=4)

    ref = ConvAutoencoder(CONFIG, seed=1)
    x = torch.tensor(x_np)[:, None]
    before = _mse(ref, x)
    losses = _reference_fit(list(ref.parameters()), ref, x, 3, 3, 2e-3, torch.Generator().manual_seed(4))

    _assert_same_weights(net, ref)
    assert rep.layer == 0 and rep.epoch_losses == losses
    assert rep.error_before == pytest.approx(before, rel=1e-6)
    assert rep.error_after == pytest.approx(_mse(ref, x), rel=1e-6)


def test_layerwise_defaults_are_batch_32_rate_1e3_seed_0():
    x = _images(40)
    a, b = ConvAutoencoder(CONFIG, seed=0), ConvAutoencoder(CONFIG, seed=0)
    ra = train_layerwise(a, x, epochs=1)
    rb = train_layerwise(b, x, epochs=1, batch_size=32, learning_rate=1e-3, seed=0)
    _assert_same_weights(a, b)
    assert [r.epoch_losses for r in ra] == [r.epoch_losses for r in rb]


def test_fine_tune_defaults_are_10_epochs_batch_32_rate_3e4_seed_0_no_bar(monkeypatch):
    bars = _record_bars(monkeypatch)
    x = _images(40)
    a, b = ConvAutoencoder(CONFIG, seed=0), ConvAutoencoder(CONFIG, seed=0)
    ra = fine_tune(a, x)
    assert bars == []
    rb = fine_tune(b, x, epochs=10, batch_size=32, learning_rate=3e-4, seed=0, progress=False)
    _assert_same_weights(a, b)
    assert len(ra.epoch_losses) == 10 and ra.epoch_losses == rb.epoch_losses


def test_reports_hold_time_and_throughput():
    x = _images(6)
    net = ConvAutoencoder(CONFIG, seed=0)
    t0 = time.perf_counter()
    reports = train_layerwise(net, x, epochs=3, batch_size=4)
    t1 = time.perf_counter()
    ft = fine_tune(net, x, epochs=2, batch_size=4)
    t2 = time.perf_counter()
    for r, epochs, wall in [*((r, 3, t1 - t0) for r in reports), (ft, 2, t2 - t1)]:
        assert isinstance(r, LayerReport)
        assert type(r.epoch_losses) is list and len(r.epoch_losses) == epochs
        assert all(type(v) is float for v in r.epoch_losses)
        assert type(r.seconds) is float and 0.0 < r.seconds <= wall
        # every epoch passes all 6 images through the layer
        assert r.images_per_second == pytest.approx(epochs * 6 / r.seconds, rel=1e-12)


@pytest.mark.parametrize("n", [300, 520])
def test_every_image_trains_each_layer_once_per_epoch_beyond_one_activation_batch(n):
    x = _images(n)
    net = ConvAutoencoder(CONFIG, seed=0)
    reports = train_layerwise(net, x, epochs=1, batch_size=n, learning_rate=1e-3)
    for r in reports:
        assert r.images_per_second * r.seconds == pytest.approx(n, rel=1e-9)

    # the layer-2 activations are those of every image, each once, in order
    ref = ConvAutoencoder(CONFIG, seed=0)
    gen = torch.Generator().manual_seed(0)
    xt = torch.tensor(x)[:, None]
    for i in range(CONFIG.depth):
        with torch.no_grad():
            inp = xt if i == 0 else ref.up(xt, i)[-1]
        assert inp.shape[0] == n
        params = [*ref.encoders[i].parameters(), *ref.decoders[i].parameters()]
        losses = _reference_fit(params, lambda xb, i=i: ref.down_layer(i, ref.up_layer(i, xb)), inp,
                                1, n, 1e-3, gen)
        assert reports[i].epoch_losses == pytest.approx(losses, rel=1e-5)


class _Bar:
    def __init__(self, total=None, desc=None, **kwargs):
        self.total, self.desc, self.kwargs, self.steps, self.closed = total, desc, kwargs, 0, False

    def update(self, n=1):
        self.steps += n

    def close(self):
        self.closed = True


def _record_bars(monkeypatch) -> list[_Bar]:
    bars: list[_Bar] = []

    def make(*args, **kwargs):
        bars.append(_Bar(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr("tqdm.auto.tqdm", make)
    return bars


@pytest.mark.parametrize(("n", "batch_size", "steps"), [(5, 4, 2), (5, 3, 2), (6, 2, 3), (2, 8, 1)])
def test_progress_bars_count_every_batch_and_vanish(monkeypatch, n, batch_size, steps):
    bars = _record_bars(monkeypatch)
    net = ConvAutoencoder(CONFIG, seed=0)
    train_layerwise(net, _images(n), epochs=3, batch_size=batch_size, progress=True)
    fine_tune(net, _images(n), epochs=2, batch_size=batch_size, progress=True)
    assert [b.desc for b in bars] == ["layer 1/2", "layer 2/2", "fine-tune"]
    for b, epochs in zip(bars, (3, 3, 2), strict=True):
        assert type(b.total) is int and b.total == epochs * steps
        assert b.steps == b.total and b.closed
        assert b.kwargs == {"leave": False}


def test_training_data_goes_to_the_models_device(monkeypatch):
    """The images are copied onto ``model.device`` (on a GPU, training would fail otherwise)."""
    real, devices = torch.tensor, []

    def spy(data, *args, **kwargs):
        if isinstance(data, np.ndarray):
            devices.append(kwargs.get("device"))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(torch, "tensor", spy)
    net = ConvAutoencoder(CONFIG, seed=0)
    train_layerwise(net, _images(3), epochs=1, layers=[1])
    fine_tune(net, _images(3), epochs=1)
    assert devices == [net.device, net.device]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_a_cuda_model():
    net = ConvAutoencoder(CONFIG, seed=0).to("cuda")
    reports = train_layerwise(net, _images(9), epochs=1, batch_size=4)
    ft = fine_tune(net, _images(9), epochs=1, batch_size=4)
    assert len(reports) == 2 and len(ft.epoch_losses) == 1
    assert net.device.type == "cuda"


def test_one_image_is_enough():
    net = ConvAutoencoder(CONFIG, seed=0)
    assert len(train_layerwise(net, _images(1), epochs=1)[0].epoch_losses) == 1
    assert len(fine_tune(net, _images(1), epochs=1).epoch_losses) == 1


@pytest.mark.parametrize("fn", [train_layerwise, fine_tune])
def test_argument_errors_word_for_word(fn):
    net = ConvAutoencoder(CONFIG, seed=0)
    x = _images(2)
    cases = [
        ({"epochs": 0}, ValueError, "Expected epochs to be an integer >= 1, got 0."),
        ({"batch_size": 0}, ValueError, "Expected batch_size to be an integer >= 1, got 0."),
        ({"batch_size": 2.0}, TypeError, "Expected batch_size to be an integer >= 1, got float 2.0."),
        ({"learning_rate": 0.0}, ValueError, "Expected learning_rate to be a finite number > 0, got 0.0."),
        ({"learning_rate": float("inf")}, ValueError,
         "Expected learning_rate to be a finite number > 0, got inf."),
    ]
    for kwargs, kind, msg in cases:
        with pytest.raises(kind) as info:
            fn(net, x, **kwargs)
        assert str(info.value) == msg
    with pytest.raises(ValueError) as info:
        fn(net, np.zeros((0, 8, 8), np.float32), epochs=1)
    assert str(info.value) == "Expected images to hold at least one image, got shape (0, 8, 8)."
    with pytest.raises(TypeError) as info:
        fn(torch.nn.Linear(2, 2), x)
    assert str(info.value) == "Expected model to be a ConvAutoencoder, got Linear."
