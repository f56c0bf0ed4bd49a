"""Row models: tied weights, the trainer interface, completion against a plain loop, saving."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fastseq.rowrnn.models import (
    GRURows, LSTMRows, TiedRNN, UntiedRNN, as_sequences, baseline_errors, complete, completion_mse,
    load_model, make_model, save_model,
)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _numpy_params(m: TiedRNN):
    return {k: v.detach().double().numpy() for k, v in m.state_dict().items()}


def _complete_twin(m: TiedRNN, rows: np.ndarray, k: int) -> np.ndarray:
    """Completion written plainly from the model's equations, one digit and one row at a time."""
    p = _numpy_params(m)
    w_out = p["Why"] if "Why" in p else p["Wxh"].T
    out = np.array(rows, dtype=np.float64)
    for n in range(out.shape[0]):
        h = np.zeros(m.n_hidden)
        for t in range(out.shape[1] - 1):
            h = _sigmoid(out[n, t] @ p["Wxh"] + h @ p["Whh"] + p["b"])
            y = _sigmoid(h @ w_out + p["c"])
            if t + 1 >= k:
                out[n, t + 1] = y
    return out


def test_tied_rnn_has_one_input_output_matrix():
    m = TiedRNN(28, 12)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"Wxh", "Whh", "b", "c"}
    assert sum(p.numel() for p in m.parameters()) == 28 * 12 + 12 * 12 + 12 + 28
    assert "Why" in dict(UntiedRNN(28, 12).named_parameters())


def test_tied_gradient_is_sum_of_both_uses():
    torch.manual_seed(0)
    tied = TiedRNN(6, 5)
    untied = UntiedRNN(6, 5)
    with torch.no_grad():
        for name in ("Wxh", "Whh", "b", "c"):
            getattr(untied, name).copy_(getattr(tied, name))
        untied.Why.copy_(tied.Wxh.t())
    x = torch.rand(4, 3, 6)
    for m in (tied, untied):
        y, _ = m(x[:-1])
        torch.nn.functional.binary_cross_entropy(y, x[1:]).backward()
    np.testing.assert_allclose(untied(x)[0].detach(), tied(x)[0].detach(), rtol=1e-6)
    # d loss / d Wxh of the tied model = input use + (output use)^T, both non-zero
    assert untied.Wxh.grad.abs().sum() > 0 and untied.Why.grad.abs().sum() > 0
    np.testing.assert_allclose(tied.Wxh.grad, untied.Wxh.grad + untied.Why.grad.t(), rtol=1e-5, atol=1e-7)


def test_tied_forward_matches_equations():
    torch.manual_seed(1)
    m = TiedRNN(28, 9)
    x = np.random.default_rng(0).random((3, 28, 28))
    y, _ = m(torch.tensor(x, dtype=torch.float32).transpose(0, 1))
    p = _numpy_params(m)
    h = np.zeros((3, 9))
    for t in range(28):
        h = _sigmoid(x[:, t] @ p["Wxh"] + h @ p["Whh"] + p["b"])
        np.testing.assert_allclose(y[t].detach().numpy(), _sigmoid(h @ p["Wxh"].T + p["c"]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [TiedRNN, UntiedRNN])
@pytest.mark.parametrize("k", [1, 5, 14, 27, 28])
def test_complete_matches_plain_loop(cls, k):
    torch.manual_seed(k)
    m = cls(28, 10)
    rows = np.random.default_rng(k).random((5, 28, 28)).astype(np.float32)
    before = rows.copy()
    got = complete(m, rows, k=k, batch_size=2)
    np.testing.assert_array_equal(rows, before)
    np.testing.assert_array_equal(got[:, :k], rows[:, :k])
    np.testing.assert_allclose(got, _complete_twin(m, rows, k), rtol=1e-4, atol=1e-5)


def test_complete_rejects_bad_arguments():
    m = TiedRNN(28, 4)
    with pytest.raises(ValueError, match="k <= 28"):
        complete(m, np.zeros((1, 28, 28)), k=29)
    with pytest.raises(ValueError, match="N x T x 28"):
        complete(m, np.zeros((28, 28)))


@pytest.mark.parametrize("cls", [TiedRNN, GRURows, LSTMRows])
def test_decoder_interface_for_the_trainer(cls):
    m = cls(28, 7)
    seed = m.hidden_seed()
    hidden = tuple(s.expand(1, 3, 7) for s in seed) if isinstance(seed, tuple) else seed.expand(1, 3, 7)
    ctx, vis = torch.rand(3, 28), torch.rand(1, 3, 28)
    decoder = m.as_decoder()
    assert isinstance(decoder, torch.nn.Module)
    assert {id(p) for p in decoder.parameters()} == {id(p) for p in m.parameters()}
    out, h = decoder(vis, ctx, hidden)
    assert out.shape == (1, 3, 28) and 0 < out.min() and out.max() < 1
    torch.testing.assert_close(out[0], m.step(ctx, m.initial_state(3))[0])
    out_fb, _ = m.as_decoder(feedback=True)(vis, ctx, hidden)
    torch.testing.assert_close(out_fb[0], m.step(vis[0], m.initial_state(3))[0])
    first = h[0] if isinstance(h, tuple) else h
    assert first.shape == (1, 3, 7)


def test_as_sequences_shifts_by_one_row():
    images = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    ctx, tgt = as_sequences(images)
    assert len(ctx) == 2 and ctx[0].shape == (3, 3)
    np.testing.assert_array_equal(ctx[1][1:], tgt[1][:-1])


def test_baselines_and_mse():
    train = np.zeros((4, 4, 2), np.float32)
    train[:, 2:] = 1.0
    test = np.ones((1, 4, 2), np.float32)
    test[0, 1] = 0.0
    b = baseline_errors(train, test, k=2)
    assert b["repeat_last"] == pytest.approx(1.0) and b["mean_bottom"] == pytest.approx(0.0)
    assert completion_mse(test * 0, test, k=2) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["rnn", "RNN_untied", "Gru", "lstm"])
def test_save_load_roundtrip(tmp_path, kind):
    m = make_model(kind, n_hidden=6)
    path = tmp_path / "m.safetensors"
    save_model(m, path)
    m2 = load_model(path)
    assert type(m2) is type(m) and m2.n_hidden == 6
    for (n1, p1), (n2, p2) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2
        torch.testing.assert_close(p1, p2)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_load_rejects_corrupt_and_foreign_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="safetensors"):
        load_model(tmp_path / "junk")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other"))
    with pytest.raises(ValueError, match="fastseq row model"):
        load_model(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "none")
    with pytest.raises(ValueError, match="one of rnn"):
        make_model("transformer")


@pytest.mark.parametrize("kind", ["rnn", "rnn_untied", "gru", "lstm"])
@pytest.mark.parametrize("feedback", [False, True])
def test_every_model_trains_through_train_bptt(kind, feedback):
    import fastseq

    torch.manual_seed(0)
    m = make_model(kind, n_hidden=8)
    images = np.random.default_rng(0).random((6, 10, 28)).astype(np.float32)
    contexts, targets = as_sequences(images)
    before = [p.detach().clone() for p in m.parameters()]
    opt = torch.optim.SGD(m.parameters(), lr=0.1)

    def cost(p, t):
        return torch.nn.functional.binary_cross_entropy(p, t, reduction="none").sum(-1)

    losses = fastseq.train_bptt(m.as_decoder(feedback), contexts, targets, torch.zeros(28), m.hidden_seed(),
                                opt, 4, 5, cost, teacher_forcing=0.5 if feedback else 0.0, seed=0)
    assert len(losses) > 0 and np.isfinite(losses).all()
    assert all(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
