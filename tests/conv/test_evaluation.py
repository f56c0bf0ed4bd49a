"""The faces protocol as a library: the split, the network's training schedule, and the
measures of each code model on real (embedded) faces."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.commands._face_machines import make_machine
from fastseq.conv import (ConvAutoencoder, ConvConfig, evaluate_faces, mean_squared_error, pca_reconstruction_error,
                          split_faces, train_autoencoder)
from fastseq.conv.evaluation import FacesEvaluation, split_digits
from fastseq.datasets import lfw_subset_faces

CONFIG = ConvConfig(16, (4, 4, 4), (2, 2, 1))


class Mean:
    """A code model without chains or likelihood: every code goes to the training mean."""

    def fit(self, X, y=None):
        self.m = X.mean(0)
        return self

    def transform(self, X):
        return np.zeros((len(X), 1))

    def inverse_transform(self, H):
        return np.repeat(self.m[None], len(H), 0)

    def gibbs(self, v):
        return self.inverse_transform(v)

    def sample(self, n_samples=1, n_steps=1, start=None):
        return self.inverse_transform(np.zeros((n_samples, 1)))


@pytest.fixture(scope="module")
def faces():
    f = lfw_subset_faces(size=16)
    return f.images[:24], f.people[:24]


@pytest.fixture(scope="module")
def split(faces):
    return split_faces(*faces, held_out=0.2, mirror=True, seed=0)


def test_split_holds_out_faces_with_their_mirror_images(faces, split):
    images, people = faces
    before = images.copy()
    assert split.train.shape == (38, 16, 16) and split.test.shape == (10, 16, 16)
    n = len(split.test) // 2
    np.testing.assert_array_equal(split.test[n:], split.test[:n, :, ::-1])
    np.testing.assert_array_equal(split.people_test[n:], split.people_test[:n])
    assert not set(split.people_train) & set(split.people_test)  # one face per person here: no overlap
    for img, who in zip(split.test[:n], split.people_test[:n]):
        np.testing.assert_array_equal(img, images[list(people).index(who)])
    again = split_faces(images, people, held_out=0.2, seed=0)
    np.testing.assert_array_equal(again.test, split.test)
    assert not np.array_equal(split_faces(images, people, held_out=0.2, seed=1).test, split.test)
    plain = split_faces(images, people, held_out=0.2, mirror=False, seed=0)
    np.testing.assert_array_equal(plain.test, split.test[:n])
    np.testing.assert_array_equal(images, before)
    with pytest.raises(ValueError, match="Expected people to hold one name per image"):
        split_faces(images, people[:3])
    with pytest.raises(ValueError, match="Expected people to hold one name per image .* got a ragged list"):
        split_faces(images, [[1], [2, 3]])
    with pytest.raises(ValueError, match=r"Expected held_out to be a share in \(0, 1\)"):
        split_faces(images, people, held_out=1.0)
    with pytest.raises(ValueError, match="Expected images to be N x H x W faces with N >= 2"):
        split_faces(images[:1], people[:1])


def test_digits_subset_resized_and_normalised_like_faces():
    from fastseq.datasets.mnist import Digits

    rng = np.random.default_rng(0)
    d = Digits(rng.random((40, 28, 28)).astype(np.float32), np.arange(40) % 10,
               rng.random((20, 28, 28)).astype(np.float32), np.arange(20) % 10, "embedded")
    s = split_digits(d, limit=10, held_out=0.3, size=14, seed=0)
    assert s.train.shape == (7, 14, 14) and s.test.shape == (3, 14, 14)
    np.testing.assert_allclose(s.train.std(axis=(1, 2)), 0.3, rtol=1e-4)
    assert s.people_train.dtype.kind == "U"
    same = split_digits(d, limit=10, held_out=0.3, seed=0)  # 28 x 28 as stored
    assert same.train.shape == (7, 28, 28)
    np.testing.assert_array_equal(same.people_test, s.people_test)
    with pytest.raises(TypeError, match="Expected digits to be a Digits record"):
        split_digits(d.train_images)


def test_training_schedule_reports_each_layer_then_the_fine_tuning(split):
    said = []
    net, reports = train_autoencoder(split.train, CONFIG, epochs=1, fine_tune_epochs=1, batch_size=16, seed=3,
                                     log=said.append)
    assert [r.layer for r in reports] == [1, 2, 3, 0] and not net.training
    assert [line.split(":")[0] for line in said] == ["CNN layer 1", "CNN layer 2", "CNN layer 3", "CNN fine-tuning"]
    untouched, none = train_autoencoder(split.train, CONFIG, epochs=0, fine_tune_epochs=0, seed=3)
    assert none == []
    fresh = ConvAutoencoder(CONFIG, seed=3)
    np.testing.assert_array_equal(untouched.encode(split.test), fresh.encode(split.test))
    assert not np.array_equal(net.encode(split.test), fresh.encode(split.test))
    with pytest.raises(ValueError, match="Expected config for the images' size"):
        train_autoencoder(split.train, ConvConfig(8, (2,), (2,)), epochs=1)
    with pytest.raises(TypeError, match="Expected log to be a function"):
        train_autoencoder(split.train, CONFIG, epochs=1, log="print")


@pytest.fixture(scope="module")
def evaluation(split):
    said = []
    machines = {name: make_machine(name, 8, 2, seed=0, ais_betas=20, ais_runs=4) for name in ("RRBM", "BetaRBM")}
    result = evaluate_faces(split.train, split.test, {**machines, "mean": Mean()}, config=CONFIG, epochs=1,
                            fine_tune_epochs=1, gibbs_steps=5, seed=0, log=said.append)
    return result, said


def test_protocol_measures_the_network_against_pca(evaluation, split):
    result, said = evaluation
    assert isinstance(result, FacesEvaluation) and [r.layer for r in result.training] == [1, 2, 3, 0]
    assert result.cnn_mse == mean_squared_error(result.autoencoder.reconstruct(split.test), split.test)
    assert (result.pca_mse, result.pca_components) == pca_reconstruction_error(split.train, split.test, 64)
    assert result.code_size == 64 and result.pca_over_cnn == result.pca_mse / result.cnn_mse
    assert said[4].startswith("held-out reconstruction error: CNN (64 codes)")


def test_protocol_measures_each_code_model(evaluation, split):
    result, said = evaluation
    assert list(result.scores) == ["RRBM", "BetaRBM", "mean"]
    assert [line.split(":")[0] for line in said[5:]] == ["RRBM", "BetaRBM", "mean"]
    for name, s in result.scores.items():
        assert 0 <= s.two_sample_accuracy <= 1 and 0 <= s.two_sample_accuracy_quadratic <= 1
        assert s.image_mse > 0 and s.code_mse_relative > 0 and s.seconds > 0
        assert result.generated_codes[name].shape == (64, 64)
        stacked = result.stacked[name]
        codes = result.autoencoder.encode(split.test)
        assert s.code_mse_relative == pytest.approx(
            mean_squared_error(stacked.through_machine(codes), codes) / np.var(codes))
    assert result.scores["RRBM"].log_likelihood is None and result.scores["mean"].log_likelihood is None
    ll = result.scores["BetaRBM"].log_likelihood
    assert set(ll) == {"log_z", "log_z_std", "log_likelihood", "log_likelihood_codes"}
    assert ll["log_likelihood_codes"] == ll["log_likelihood"] + result.stacked["BetaRBM"].scaler.log_det
    # the mean model generates one code again and again: no spread, told apart with squares
    assert result.scores["mean"].generated_spread == pytest.approx(0.0, abs=1e-5)
    best = result.best_two_sample
    assert best in result.scores and all(
        abs(result.scores[best].two_sample_accuracy_quadratic - 0.5)
        <= abs(s.two_sample_accuracy_quadratic - 0.5) for s in result.scores.values())


def test_a_given_network_is_measured_not_trained(evaluation, split):
    result, _ = evaluation
    again = evaluate_faces(split.train, split.test, {"mean": Mean()}, autoencoder=result.autoencoder, gibbs_steps=1)
    assert again.training == [] and again.autoencoder is result.autoencoder
    assert again.cnn_mse == result.cnn_mse
    assert again.scores["mean"].image_mse == pytest.approx(result.scores["mean"].image_mse)


def test_protocol_arguments_are_checked(split):
    train, test = split.train, split.test
    net = ConvAutoencoder(CONFIG, seed=0)
    with pytest.raises(TypeError, match="Expected code_models to be a non-empty mapping"):
        evaluate_faces(train, test, {}, autoencoder=net)
    with pytest.raises(TypeError, match=r"Expected code_models\['x'\] to have the methods of CodeModel.*sample"):
        evaluate_faces(train, test, {"x": object()}, autoencoder=net)
    odd = Mean()
    odd.scaling = "log"
    with pytest.raises(ValueError, match=r"code_models\['odd'\].scaling"):
        evaluate_faces(train, test, {"odd": odd}, autoencoder=net)
    with pytest.raises(ValueError, match="Expected test to be N x H x W faces with N >= 2"):
        evaluate_faces(train, test[:1], {"mean": Mean()}, autoencoder=net)
    with pytest.raises(ValueError, match="Expected train and test to hold square faces of one size"):
        evaluate_faces(train, test[:, :8], {"mean": Mean()}, autoencoder=net)
    with pytest.raises(ValueError, match="Expected autoencoder to take the 16 x 16 faces"):
        evaluate_faces(train, test, {"mean": Mean()}, autoencoder=ConvAutoencoder(ConvConfig(8, (2,), (2,))))
    with pytest.raises(ValueError, match="Expected config only without autoencoder"):
        evaluate_faces(train, test, {"mean": Mean()}, autoencoder=net, config=CONFIG)
    with pytest.raises(ValueError, match="Expected seed to be an integer in"):
        evaluate_faces(train, test, {"mean": Mean()}, autoencoder=net, seed=2**40)
    with pytest.raises(ValueError, match="Expected train to hold finite numbers"):
        evaluate_faces(np.where(train == train.max(), np.nan, train), test, {"mean": Mean()}, autoencoder=net)


@pytest.mark.slow
def test_digits_network_beats_pca_at_equal_code_size():
    """The digits' defaults, on 200 training digits: the network (72 codes) beats PCA with 72
    components on 50 held-out digits. Measured 1.33x; each earlier choice fails the bar on its
    own: 8 + 4 epochs at a quarter rate 0.55x, tanh units 0.98x, a quarter-rate fine-tuning 1.05x."""
    from fastseq.conv import default_config
    from fastseq.conv.evaluation import DIGITS_TRAINING
    from fastseq.datasets.mnist import load_mnist

    s = split_digits(load_mnist(), limit=250, seed=0)
    before = s.train.copy()
    net, reports = train_autoencoder(s.train, default_config(28, "digits"), **DIGITS_TRAINING, seed=0)
    np.testing.assert_array_equal(s.train, before)
    assert [r.layer for r in reports] == [1, 2, 3, 0] and len(reports[-1].epoch_losses) == 40
    cnn = mean_squared_error(net.reconstruct(s.test), s.test)
    pca, k = pca_reconstruction_error(s.train, s.test, net.config.code_size)
    assert k == net.config.code_size == 72  # equal code size: 200 training digits allow 72 components
    assert pca / cnn > 1.15, (cnn, pca)


def test_fine_tuning_rate_is_a_share_of_the_learning_rate(split):
    a, _ = train_autoencoder(split.train, CONFIG, epochs=0, fine_tune_epochs=1, learning_rate=4e-3, seed=0)
    b, _ = train_autoencoder(split.train, CONFIG, epochs=0, fine_tune_epochs=1, learning_rate=1e-3,
                             fine_tune_rate=1.0, seed=0)
    np.testing.assert_allclose(a.encode(split.test), b.encode(split.test), atol=1e-6)  # both fine-tune at 1e-3
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="Expected fine_tune_rate to be a finite number"):
            train_autoencoder(split.train, CONFIG, epochs=1, fine_tune_rate=bad)
