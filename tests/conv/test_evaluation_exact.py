"""Exact answers of the faces protocol's public functions: their defaults (calling without an
argument equals calling with the documented value), their bounds and messages word for
word, the split sizes at the edges, the training schedule handed to the layer-wise and
end-to-end trainers, and each measure of a code model on codes designed so that a wrong
formula gives a different number."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from fastseq.conv import ConvAutoencoder, ConvConfig, evaluate_faces, fine_tune, split_faces, train_layerwise
from fastseq.conv.evaluation import split_digits, train_autoencoder
from fastseq.datasets.faces import normalise_faces
from fastseq.datasets.mnist import Digits

S = 8
CONFIG = ConvConfig(S, (2,), (2,))  # 2 x 4 x 4 = 32 codes
FACES = np.random.default_rng(0).uniform(-0.5, 0.5, (64, S, S)).astype(np.float32)
PEOPLE = np.arange(64)


def _exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _weights(net: ConvAutoencoder) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in net.parameters()]


def _same_weights(a: ConvAutoencoder, b: ConvAutoencoder) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_weights(a), _weights(b)))


# --- split_faces ---------------------------------------------------------------------------

def test_split_faces_defaults_are_a_fifth_held_out_mirrored_with_seed_0():
    faces, people = FACES[:10], PEOPLE[:10]
    plain = split_faces(faces, people)
    explicit = split_faces(faces, people, held_out=0.2, mirror=True, seed=0)
    np.testing.assert_array_equal(plain.test, explicit.test)
    np.testing.assert_array_equal(plain.people_test, explicit.people_test)
    assert plain.test.shape == (4, S, S) and plain.train.shape == (16, S, S)  # 2 held out, with mirrors
    assert not np.array_equal(split_faces(faces, people, seed=1).people_test, plain.people_test)


def test_split_faces_holds_out_at_least_one_and_leaves_at_least_one():
    faces, people = FACES[:10], PEOPLE[:10]
    most = split_faces(faces, people, held_out=0.99, mirror=False)  # round(9.9) = 10, capped at 9
    assert (len(most.train), len(most.test)) == (1, 9)
    least = split_faces(faces, people, held_out=0.01, mirror=False)  # round(0.1) = 0, raised to 1
    assert (len(least.train), len(least.test)) == (9, 1)


def test_split_faces_messages_name_the_argument():
    faces, people = FACES[:10], PEOPLE[:10]
    with pytest.raises(TypeError, match=_exactly("Expected mirror to be True or False, got str 'yes'.")):
        split_faces(faces, people, mirror="yes")
    with pytest.raises(ValueError, match=_exactly("Expected seed to be an integer >= 0, got -1.")):
        split_faces(faces, people, seed=-1)
    with pytest.raises(ValueError, match=_exactly(
            "Expected images to be N x H x W faces with N >= 2 and H, W >= 1, got shape (0, 8, 8).")):
        split_faces(np.zeros((0, S, S)), [])


def test_held_out_is_a_share_strictly_between_0_and_1():
    faces, people = FACES[:10], PEOPLE[:10]
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=_exactly(f"Expected held_out to be a share in (0, 1), got {bad!r}.")):
            split_faces(faces, people, held_out=bad)
    with pytest.raises(ValueError, match=_exactly("Expected held_out to be a finite number in [0.0, 1.0], got 1.5.")):
        split_faces(faces, people, held_out=1.5)


# --- split_digits --------------------------------------------------------------------------

def _digits(n_train: int, n_test: int, side: int = 4) -> Digits:
    rng = np.random.default_rng(1)
    return Digits(rng.random((n_train, side, side)).astype(np.float32), np.arange(n_train) % 10,
                  rng.random((n_test, side, side)).astype(np.float32), np.arange(n_test) % 10, "embedded")


def test_split_digits_defaults_are_1500_digits_a_fifth_held_out_seed_0():
    d = _digits(1300, 400)
    plain = split_digits(d)
    assert plain.train.shape == (1200, 4, 4) and plain.test.shape == (300, 4, 4)
    explicit = split_digits(d, limit=1500, held_out=0.2, size=None, seed=0)
    np.testing.assert_array_equal(plain.train, explicit.train)
    np.testing.assert_array_equal(plain.test, explicit.test)
    assert not np.array_equal(split_digits(d, seed=1).train, plain.train)


def test_split_digits_names_are_the_labels_as_text():
    d = _digits(40, 20)
    s = split_digits(d, limit=10, held_out=0.3, seed=0)
    assert s.people_test.dtype.kind == "U" and s.people_train.dtype.kind == "U"
    rng = np.random.default_rng(0)  # the documented seeded subsets, drawn again
    i = np.sort(rng.permutation(40)[:7])
    j = np.sort(rng.permutation(20)[:3])
    assert s.people_train.tolist() == [str(k % 10) for k in i]
    assert s.people_test.tolist() == [str(k % 10) for k in j]


def test_split_digits_keeps_at_least_one_digit_in_each_part():
    d = _digits(40, 20)
    s = split_digits(d, limit=3, held_out=0.1)  # round(0.3) = 0 held out, raised to 1
    assert (len(s.train), len(s.test)) == (2, 1)
    s = split_digits(d, limit=1, held_out=0.5)  # one held out leaves none, raised to 1
    assert (len(s.train), len(s.test)) == (1, 1)


def test_split_digits_resizes_with_anti_aliasing_unless_28():
    from skimage.transform import resize

    img = np.random.default_rng(2).random((28, 28)).astype(np.float32)
    d = Digits(np.repeat(img[None], 12, 0), np.arange(12), np.repeat(img[None], 6, 0), np.arange(6), "embedded")
    small = split_digits(d, limit=6, held_out=0.5, size=14)
    expected = normalise_faces(resize(img[None], (1, 14, 14), anti_aliasing=True))[0]
    np.testing.assert_allclose(small.train[0], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(normalise_faces(resize(img[None], (1, 14, 14), anti_aliasing=False))[0], expected,
                           atol=1e-3)
    np.testing.assert_array_equal(split_digits(d, limit=6, held_out=0.5, size=28).train,
                                  split_digits(d, limit=6, held_out=0.5).train)
    assert split_digits(d, limit=6, held_out=0.5, size=29).train.shape == (3, 29, 29)


def test_split_digits_checks_the_memory_of_the_resized_digits(monkeypatch):
    import fastseq._util.memory as memory

    d = _digits(40, 20, side=28)
    need = 8.0 * (7 + 3) * 14 * 14  # float64 digits, 7 trained on and 3 held out, 14 x 14
    monkeypatch.setattr(memory, "machine_memory", lambda: int(need))
    assert split_digits(d, limit=10, held_out=0.3, size=14).train.shape == (7, 14, 14)  # exactly fits
    monkeypatch.setattr(memory, "machine_memory", lambda: int(need) - 1)
    with pytest.raises(ValueError, match="^size=14 would need "):
        split_digits(d, limit=10, held_out=0.3, size=14)


def test_split_digits_messages_name_the_argument():
    d = _digits(40, 20)
    with pytest.raises(ValueError, match=_exactly("Expected limit to be an integer >= 1, got 0.")):
        split_digits(d, limit=0)
    with pytest.raises(ValueError, match=_exactly("Expected held_out to be a share in (0, 1), got 1.0.")):
        split_digits(d, held_out=1.0)
    with pytest.raises(ValueError, match=_exactly("Expected held_out to be a finite number in [0.0, 1.0], got 1.2.")):
        split_digits(d, held_out=1.2)
    with pytest.raises(ValueError, match=_exactly("Expected size to be an integer >= 1, got 0.")):
        split_digits(d, size=0)
    with pytest.raises(ValueError, match=_exactly("Expected seed to be an integer >= 0, got -1.")):
        split_digits(d, seed=-1)


# --- train_autoencoder ---------------------------------------------------------------------

def test_train_autoencoder_trains_20_epochs_per_stage_by_default():
    _, reports = train_autoencoder(FACES[:2], CONFIG)
    assert [r.layer for r in reports] == [1, 0]
    assert [len(r.epoch_losses) for r in reports] == [20, 20]


def test_train_autoencoder_defaults_are_the_documented_ones():
    x = FACES[:20]  # more than one batch of 16
    plain, _ = train_autoencoder(x, CONFIG, epochs=1, fine_tune_epochs=1)
    explicit, _ = train_autoencoder(x, CONFIG, epochs=1, fine_tune_epochs=1, learning_rate=2e-3, fine_tune_rate=0.25,
                                    batch_size=16, seed=0, device="cpu", progress=False)
    assert _same_weights(plain, explicit)
    for other in ({"batch_size": 17}, {"seed": 1}, {"learning_rate": 1e-3}):
        changed, _ = train_autoencoder(x, CONFIG, epochs=1, fine_tune_epochs=1, **other)
        assert not _same_weights(plain, changed), other


def test_train_autoencoder_hands_its_settings_to_both_trainers():
    x = FACES[:12]
    net, reports = train_autoencoder(x, CONFIG, epochs=2, fine_tune_epochs=3, learning_rate=5e-3, fine_tune_rate=0.5,
                                     batch_size=4, seed=3)
    ref = ConvAutoencoder(CONFIG, seed=3)
    layers = train_layerwise(ref, x, epochs=2, batch_size=4, learning_rate=5e-3, seed=3)
    tuned = fine_tune(ref, x, epochs=3, batch_size=4, learning_rate=5e-3 * 0.5, seed=3)
    assert _same_weights(net, ref) and not net.training
    assert [len(r.epoch_losses) for r in reports] == [2, 3]
    assert [r.epoch_losses for r in reports] == [layers[0].epoch_losses, tuned.epoch_losses]


def test_train_autoencoder_shows_progress_bars_only_when_asked(capsys):
    train_autoencoder(FACES[:4], CONFIG, epochs=1, fine_tune_epochs=1)
    assert capsys.readouterr().err == ""
    train_autoencoder(FACES[:4], CONFIG, epochs=1, fine_tune_epochs=0, progress=True)
    assert "layer 1/1" in capsys.readouterr().err
    train_autoencoder(FACES[:4], CONFIG, epochs=0, fine_tune_epochs=1, progress=True)
    assert "fine-tune" in capsys.readouterr().err


def test_train_autoencoder_takes_a_single_image():
    _, reports = train_autoencoder(FACES[:1], CONFIG, epochs=1, fine_tune_epochs=0)
    assert [r.layer for r in reports] == [1]


def test_train_autoencoder_moves_the_network_to_the_device_asked_for(monkeypatch):
    moved = []
    to = ConvAutoencoder.to

    def recording_to(self, *args, **kwargs):
        moved.append(args)
        return to(self, *args, **kwargs)

    monkeypatch.setattr(ConvAutoencoder, "to", recording_to)
    train_autoencoder(FACES[:2], CONFIG, epochs=0, fine_tune_epochs=0, device="cpu")
    assert moved == [(torch.device("cpu"),)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_train_autoencoder_returns_the_network_on_its_device():
    net, _ = train_autoencoder(FACES[:4], CONFIG, epochs=1, fine_tune_epochs=1, device="cuda")
    assert all(p.device.type == "cuda" for p in net.parameters())


def test_train_autoencoder_messages_name_the_argument():
    with pytest.raises(ValueError, match=_exactly(
            "Expected images to be N x H x W faces with N >= 1 and H, W >= 1, got shape (0, 8, 8).")):
        train_autoencoder(np.zeros((0, S, S), np.float32), CONFIG)
    with pytest.raises(ValueError, match=_exactly("Expected epochs to be an integer >= 0, got -1.")):
        train_autoencoder(FACES[:2], CONFIG, epochs=-1)
    with pytest.raises(ValueError, match=_exactly("Expected seed to be an integer >= 0, got -1.")):
        train_autoencoder(FACES[:2], CONFIG, seed=-1)
    with pytest.raises(TypeError, match=_exactly("Expected config to be a ConvConfig, got str.")):
        train_autoencoder(FACES[:2], "8")
    with pytest.raises(ValueError, match=_exactly("Expected config for the images' size, got one for 8 x 8 and "
                                                  "images of shape (2, 6, 6).")):
        train_autoencoder(np.zeros((2, 6, 6), np.float32), CONFIG, epochs=1)
    # non-square images are refused up front, with a config or without, trained or not (with no
    # epochs the network would otherwise come back unable to take them)
    wide = np.zeros((2, S, 6), np.float32)
    for kwargs in (dict(config=CONFIG, epochs=1), dict(epochs=1, fine_tune_epochs=0),
                   dict(epochs=0, fine_tune_epochs=0)):
        with pytest.raises(ValueError, match=_exactly("Expected square images, N x S x S, got shape (2, 8, 6).")):
            train_autoencoder(wide, **kwargs)


# --- evaluate_faces ------------------------------------------------------------------------

#: per-unit factors of the generated codes' spread: 0.3 and 2.6 outside a factor 2, 1.0 and 1.7 within
FACTORS = np.resize([0.3, 1.0, 1.7, 2.6], CONFIG.code_size)


class Replay:
    """A code model that generates the held-out codes again (cycling through them), each unit's
    spread about its mean times FACTORS, and reports a log-likelihood of -3 nats."""

    def fit(self, X, y=None):
        return self

    def _identity(self, X):
        return np.asarray(X, dtype=np.float64)

    transform = inverse_transform = gibbs = _identity  # the mean field leaves every code as it is

    def held_out_log_likelihood(self, train, test):
        self.test = np.asarray(test, dtype=np.float64)
        return {"log_likelihood": -3.0}

    def sample(self, n_samples=1, n_steps=1, start=None):
        rows = self.test[np.arange(n_samples) % len(self.test)]  # all of them once for 64 held-out faces
        mean = self.test.mean(0)
        return mean + FACTORS * (rows - mean)


@pytest.fixture  # per test: mutmut credits a module fixture's calls to the first test that uses it
def replayed():
    net = ConvAutoencoder(CONFIG, seed=0).eval()
    said = []
    start = time.perf_counter()
    # the same 64 faces on both sides: no held-out code is clipped by the training codes' scaler
    result = evaluate_faces(FACES, FACES, {"replay": Replay()}, autoencoder=net, gibbs_steps=1, log=said.append)
    return result, said, time.perf_counter() - start


def test_generated_spread_is_per_unit_over_the_held_out_codes(replayed):
    result, _, _ = replayed
    s, codes = result.scores["replay"], result.autoencoder.encode(FACES).astype(np.float64)
    sd = codes.std(0)
    assert s.generated_spread == pytest.approx(float((FACTORS * sd).mean() / sd.mean()), rel=1e-4)
    assert s.generated_spread_within_2x == 0.5  # the units of factors 1.0 and 1.7


def test_log_likelihood_of_the_codes_adds_the_scalers_log_det(replayed):
    result, _, _ = replayed
    codes = result.autoencoder.encode(FACES).astype(np.float64)
    width = 1.1 * (codes.max(0) - codes.min(0))  # the unit scaler's range, with its 5% margins
    ll = result.scores["replay"].log_likelihood
    assert ll["log_likelihood"] == -3.0
    assert ll["log_likelihood_codes"] == pytest.approx(-3.0 - np.log(width).sum(), rel=1e-6)


def test_generate_seconds_is_the_time_spent_generating(replayed):
    result, _, wall = replayed
    s = result.scores["replay"]
    assert 0 <= s.generate_seconds <= wall and 0 <= s.seconds <= wall


def test_log_gives_pca_over_cnn(replayed):
    result, said, _ = replayed
    assert said[0].endswith(f"the CNN {'beats' if result.cnn_mse < result.pca_mse else 'does NOT beat'} PCA "
                            f"({result.pca_mse / result.cnn_mse:.2f}x)")


def test_evaluate_faces_takes_two_training_faces_and_the_largest_seed():
    net = ConvAutoencoder(CONFIG, seed=0).eval()
    result = evaluate_faces(FACES[:2], FACES[2:6], {"replay": Replay()}, autoencoder=net, gibbs_steps=1,
                            seed=2**32 - 1)
    assert result.pca_components == 2 and list(result.scores) == ["replay"]


def test_evaluate_faces_messages_name_the_argument():
    net = ConvAutoencoder(CONFIG, seed=0).eval()
    with pytest.raises(ValueError, match=_exactly("Expected gibbs_steps to be an integer >= 1, got 0.")):
        evaluate_faces(FACES[:4], FACES[4:8], {"replay": Replay()}, autoencoder=net, gibbs_steps=0)
    with pytest.raises(ValueError, match=_exactly("Expected seed to be an integer in [0, 4294967295], got 4294967296.")):
        evaluate_faces(FACES[:4], FACES[4:8], {"replay": Replay()}, autoencoder=net, seed=2**32)
    wide = np.zeros((4, S, 6), np.float32)
    with pytest.raises(ValueError, match=_exactly("Expected train and test to hold square faces of one size, got "
                                                  "shapes (4, 8, 6) and (4, 8, 6).")):
        evaluate_faces(wide, wide, {"replay": Replay()}, autoencoder=net)
