"""Each measure of the faces protocol on the split it names. The data make the training and
the held-out answers far apart (held-out faces of another kind than the training faces), so a
measure computed on the wrong split, or a model fitted on the wrong one, fails."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from fastseq.conv import (ConvAutoencoder, ConvConfig, evaluate_faces, mean_squared_error, pca_reconstruction_error,
                          split_faces, two_sample_accuracy)
from fastseq.conv.stacked import CodeScaler

S = 8
CONFIG = ConvConfig(S, (2,), (2,))  # 2 x 4 x 4 = 32 codes of 64 pixels


def _faces():
    """40 training faces: small, with most variance along a few directions of a random basis;
    20 held-out faces: large, along the directions the training faces barely use."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(S * S, S * S)))[0]
    train_scale = 0.2 * np.exp(-np.arange(S * S) / 6.0)  # distinct, decaying: PCA's axes are well defined
    train = (rng.normal(size=(40, S * S)) * train_scale) @ basis.T
    test = (rng.normal(size=(20, S * S)) * np.r_[np.zeros(48), np.full(16, 0.8)]) @ basis.T + 0.3
    return train.reshape(-1, S, S).astype(np.float32), test.reshape(-1, S, S).astype(np.float32)


TRAIN, TEST = _faces()


class Memory:
    """A code model that remembers its training rows: its mean field is the identity (on the
    scaler's [0, 1], so held-out codes outside the training range are clipped), and it
    generates the training rows again."""

    def fit(self, X, y=None):
        self.rows = np.array(X, dtype=np.float64)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float64)

    def inverse_transform(self, H):
        return np.asarray(H, dtype=np.float64)

    def gibbs(self, v):
        return np.asarray(v, dtype=np.float64)

    def sample(self, n_samples=1, n_steps=1, start=None):
        return self.rows[np.arange(n_samples) % len(self.rows)]


@pytest.fixture(scope="module")
def net():
    return ConvAutoencoder(CONFIG, seed=0).eval()


@pytest.fixture(scope="module")
def evaluation(net):
    memory = Memory()
    return evaluate_faces(TRAIN, TEST, {"memory": memory}, autoencoder=net, gibbs_steps=1, seed=0), memory


def test_pca_is_fitted_on_train_and_scored_on_test():
    err, k = pca_reconstruction_error(TRAIN, TEST, 32)
    assert k == 32
    flat_tr, flat_te = TRAIN.reshape(40, -1).astype(np.float64), TEST.reshape(20, -1).astype(np.float64)
    pca = PCA(32, svd_solver="full").fit(flat_tr)  # an independent PCA
    assert err == pytest.approx(np.mean((pca.inverse_transform(pca.transform(flat_te)) - flat_te) ** 2), rel=1e-6)
    # the wrong splits give far smaller errors
    assert err > 50 * pca_reconstruction_error(TRAIN, TRAIN, 32)[0]  # scored on train
    assert err > 50 * max(pca_reconstruction_error(TEST, TEST, 32)[0], 1e-12)  # fitted on test
    both = np.concatenate([TRAIN, TEST])
    assert err > 2 * pca_reconstruction_error(both, TEST, 32)[0]  # fitted on train and test
    # components are capped by the training rows (3 here), not by the held-out rows (20)
    assert pca_reconstruction_error(TRAIN[:3], TEST, 32)[1] == 3
    assert pca_reconstruction_error(TEST, TRAIN[:3], 32)[1] == 20


def test_two_sample_accuracy_is_held_out_not_resubstituted():
    """One distribution in 60 dimensions and 40 rows of each: a logistic regression fits its
    training folds perfectly, but its held-out folds are near chance."""
    rng = np.random.default_rng(3)
    real, generated = rng.normal(size=(40, 60)), rng.normal(size=(40, 60))
    acc = two_sample_accuracy(real, generated, folds=5, seed=0)
    assert acc < 0.7
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.concatenate([real, generated]), np.r_[np.zeros(40), np.ones(40)]
    resubstituted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y).score(x, y)
    assert resubstituted == 1.0  # what scoring on the training folds would report


def test_split_never_puts_a_held_out_face_or_its_mirror_in_training():
    rng = np.random.default_rng(4)
    faces = rng.random((30, 5, 5))  # every face and every mirror image distinct
    s = split_faces(faces, np.arange(30), held_out=0.3, seed=2)
    assert len(s.test) == 2 * 9 and len(s.train) == 2 * 21
    train_rows = {f.tobytes() for f in s.train}
    assert not any(f.tobytes() in train_rows or f[:, ::-1].tobytes() in train_rows for f in s.test)
    assert set(s.people_train.tolist()) | set(s.people_test.tolist()) == set(range(30))
    for face, who in zip(s.test, s.people_test):  # names follow their faces (mirrors too)
        assert face.tobytes() in (faces[who].tobytes(), faces[who][:, ::-1].tobytes())


def test_network_and_pca_are_scored_on_the_held_out_faces(evaluation, net):
    result, _ = evaluation
    assert result.training == [] and result.autoencoder is net
    held_out = mean_squared_error(net.reconstruct(TEST), TEST)
    assert result.cnn_mse == held_out
    assert held_out > 10 * mean_squared_error(net.reconstruct(TRAIN), TRAIN)
    assert (result.pca_mse, result.pca_components) == pca_reconstruction_error(TRAIN, TEST, 32)


def test_code_model_fitted_on_training_codes_and_scored_on_held_out_ones(evaluation, net):
    result, memory = evaluation
    ctr, cte = net.encode(TRAIN), net.encode(TEST)
    scaler = CodeScaler("unit").fit(ctr)
    np.testing.assert_array_equal(memory.rows, scaler.transform(ctr))  # fitted on the training codes only
    s = result.scores["memory"]
    # through the model: the identity, but held-out codes beyond the training range are clipped
    through = scaler.inverse_transform(scaler.transform(cte))
    assert s.code_mse_relative == pytest.approx(mean_squared_error(through, cte) / np.var(cte), rel=1e-5)
    assert s.code_mse_relative > 0.05
    assert mean_squared_error(scaler.inverse_transform(scaler.transform(ctr)), ctr) < 1e-10  # nothing on train
    stacked = result.stacked["memory"]
    assert s.image_mse == mean_squared_error(stacked.autoencode(TEST), TEST)
    # generated codes are the training codes again: told from the held-out codes, not from the training ones
    generated = result.generated_codes["memory"]
    assert generated.shape == (64, 32)
    assert s.two_sample_accuracy > 0.9
    assert s.generated_spread == pytest.approx(float(generated.std(0).mean() / cte.std(0).mean()), rel=1e-6)
    assert abs(s.generated_spread - generated.std(0).mean() / ctr.std(0).mean()) > 0.2
    ratio = generated.std(0) / cte.std(0)
    assert s.generated_spread_within_2x == pytest.approx(float(np.mean((ratio >= 0.5) & (ratio <= 2.0))))
