"""``fastseq faces``: a tiny end-to-end run, and each bad input as one line with exit 2."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import skimage.io
from skimage.data import lfw_subset

from fastseq.cli import main
from fastseq.conv import ConvAutoencoder, ConvConfig

TINY = ["--size", "16", "--max-images", "24", "--channels", "4", "4", "4", "--strides", "2", "2", "1",
        "--cnn-epochs", "1", "--fine-tune-epochs", "1", "--rbm-epochs", "2", "--hidden", "8", "--gibbs-steps", "5",
        "--ais-betas", "20", "--ais-runs", "4", "--quiet"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))


def _fails(capsys, argv, *words):
    assert main(["faces", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fastseq faces: error:"), err
    for w in words:
        assert w in err, err


def test_tiny_run_writes_four_pictures_and_metrics(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["faces", *TINY, "--output", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "PCA" in printed and "two-sample accuracy" in printed
    # 24 faces are far too few for the protocol: said once, on stderr and in the metrics
    warned = [line for line in captured.err.splitlines() if line.startswith("fastseq faces: warning: only ")]
    assert len(warned) == 1 and "at least 100 training images" in warned[0], captured.err
    for name in ("data", "autoencoded", "generated", "interpolated"):
        picture = skimage.io.imread(out / f"faces_{name}.png")
        assert picture.ndim == 2 and picture.std() > 0
    m = json.loads((out / "faces_metrics.json").read_text())
    assert set(m["machines"]) == {"RRBM", "R3BM", "BetaRBM", "GaussianRBM"}
    assert m["machines"]["RRBM"]["ais"] is None and m["machines"]["BetaRBM"]["ais"]["log_z_std"] >= 0
    assert 0 <= m["machines"]["GaussianRBM"]["two_sample_accuracy"] <= 1
    assert m["cnn"]["code_size"] == 64 and m["cnn"]["pca_components"] <= 64
    assert [r["layer"] for r in m["cnn"]["layers"]] == [1, 2, 3]
    assert m["warnings"] == [warned[0].removeprefix("fastseq faces: warning: ")]
    # refuses to overwrite, unless --force; a saved network is reused with --model
    _fails(capsys, [*TINY, "--output", str(out)], "--force")
    assert main(["faces", *TINY, "--output", str(out), "--force", "--machines", "GaussianRBM",
                 "--model", str(out / "faces_cnn.safetensors")]) == 0


def test_enough_images_give_no_warning():
    from fastseq.commands.faces import MIN_HELD_OUT_IMAGES, MIN_TRAIN_IMAGES, _too_few_images

    assert _too_few_images(MIN_TRAIN_IMAGES, MIN_HELD_OUT_IMAGES) == ""
    assert "only 99 training and 25 held-out" in _too_few_images(MIN_TRAIN_IMAGES - 1, MIN_HELD_OUT_IMAGES)
    assert "only 100 training and 24 held-out" in _too_few_images(MIN_TRAIN_IMAGES, MIN_HELD_OUT_IMAGES - 1)


def test_mnist_as_a_second_data_set(tmp_path):
    argv = [*TINY, "--dataset", "mnist", "--machines", "BetaRBM", "--output", str(tmp_path)]
    argv[1] = "28"
    assert main(["faces", *argv]) == 0
    assert json.loads((tmp_path / "mnist_metrics.json").read_text())["size"] == 28


def _jpeg_folder(root, count):
    raw = (lfw_subset()[:count] * 255).astype(np.uint8)
    (root / "Ann").mkdir(parents=True)
    for i in range(count):
        skimage.io.imsave(root / "Ann" / f"Ann_{i}.jpg", raw[i], check_contrast=False)
    return root


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    _fails(capsys, ["--data", str(tmp_path / "missing")], "--data", "not a folder")
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["--data", str(tmp_path / "empty")], "image files")
    one = _jpeg_folder(tmp_path / "one", 1)
    _fails(capsys, [*TINY, "--data", str(one), "--output", str(tmp_path / "o1")], "at least 2", "got 1")
    _fails(capsys, [*TINY, "--size", "3", "--output", str(tmp_path / "o2")], "--size", "at least", "got 3")
    _fails(capsys, [*TINY, "--people", "face_001", "nobody", "--output", str(tmp_path / "o3")], "--people", "nobody")
    _fails(capsys, [*TINY, "--channels", "4", "--output", str(tmp_path / "o4")], "--channels and --strides")
    other = tmp_path / "other.safetensors"
    ConvAutoencoder(ConvConfig(16, (4, 4, 2), (2, 2, 1))).save(other)
    _fails(capsys, [*TINY, "--model", str(other), "--output", str(tmp_path / "o5")], "model", "got one for")
    _fails(capsys, [*TINY, "--device", "tpu", "--output", str(tmp_path / "o6")], "--device")
    _fails(capsys, [*TINY, "--mix-layer", "4", "--output", str(tmp_path / "o7")], "--mix-layer")
    _fails(capsys, [*TINY, "--max-images", "4", "--no-mirror", "--output", str(tmp_path / "o8")],
           "at least 2 held-out images", "got 1", "--held-out")
    assert not (tmp_path / "o8" / "faces_cnn.safetensors").exists()  # refused before the network trained


def test_option_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["faces", "--mix", "2"])
    assert exc.value.code == 2
    assert "--mix" in capsys.readouterr().err


def test_a_size_that_cannot_fit_names_the_option(capsys, tmp_path):
    _fails(capsys, ["--size", "99999999", "--output", str(tmp_path / "o")], "--size 99999999", "would need")


def test_the_command_reports_what_the_library_protocol_measures(tmp_path, capsys):
    from fastseq.commands._face_machines import make_machine
    from fastseq.conv import evaluate_faces, split_faces
    from fastseq.datasets import lfw_subset_faces

    assert main(["faces", *TINY, "--machines", "RRBM", "BetaRBM", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    m = json.loads((tmp_path / "faces_metrics.json").read_text())
    faces = lfw_subset_faces(size=16)
    split = split_faces(faces.images[:24], faces.people[:24], held_out=0.2, mirror=True, seed=0)
    machines = {name: make_machine(name, 8, 2, 0, batch_size=16, ais_betas=20, ais_runs=4)
                for name in ("RRBM", "BetaRBM")}
    said = []
    r = evaluate_faces(split.train, split.test, machines, config=ConvConfig(16, (4, 4, 4), (2, 2, 1)), epochs=1,
                       fine_tune_epochs=1, learning_rate=2e-3, batch_size=16, gibbs_steps=5, seed=0, log=said.append)
    assert (m["cnn"]["test_mse"], m["cnn"]["pca_mse"], m["cnn"]["pca_components"]) == (r.cnn_mse, r.pca_mse,
                                                                                        r.pca_components)
    assert [layer["error_after"] for layer in m["cnn"]["layers"]] == [rep.error_after for rep in r.training[:3]]
    for name, s in r.scores.items():
        got = m["machines"][name]
        assert got["ais"] == s.log_likelihood
        for key in ("image_mse", "code_mse_relative", "two_sample_accuracy", "two_sample_accuracy_quadratic",
                    "generated_spread"):
            assert got[key] == getattr(s, key), (name, key)
    assert m["best_two_sample"] == r.best_two_sample
    # the same lines, apart from the training speed
    strip = lambda lines: [re.sub(r"\(\S+ images/s\)", "", line) for line in lines]  # noqa: E731
    assert strip(printed[1:-1]) == strip(said)


def test_the_deep_belief_net_draws_the_pictures_and_is_measured(tmp_path, capsys):
    argv = [*TINY, "--machines", "GaussianRBM", "dbn", "--picture-machine", "dbn", "--interpolate-at", "hidden",
            "--cd-steps", "2", "--output", str(tmp_path)]
    assert main(["faces", *argv]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed if line.startswith(("dbn:", "GaussianRBM:"))] == [
        "dbn", "GaussianRBM"]
    for name in ("data", "autoencoded", "generated", "interpolated"):
        picture = skimage.io.imread(tmp_path / f"faces_{name}.png")
        assert picture.ndim == 2 and picture.std() > 0
    m = json.loads((tmp_path / "faces_metrics.json").read_text())
    assert m["picture_machine"] == "dbn" and set(m["machines"]) == {"dbn", "GaussianRBM"}
    deep = m["machines"]["dbn"]
    assert np.isfinite(deep["ais"]["log_likelihood_codes"]) and deep["ais"]["log_z_std"] >= 0
    for key in ("two_sample_accuracy", "two_sample_accuracy_quadratic", "generated_spread_within_2x"):
        assert 0 <= deep[key] <= 1, key
    assert deep["generated_spread"] > 0 and deep["image_mse"] > 0


def test_the_deep_code_model_goes_through_every_layer():
    from fastseq.boltzmann import RBM, GaussianRBM
    from fastseq.commands._face_machines import make_machine

    x = np.random.default_rng(0).standard_normal((40, 6))
    model = make_machine("dbn", 8, 3, seed=0, batch_size=8).fit(x)
    net = model.net
    assert [type(m) for m in net.layers_] == [GaussianRBM, RBM] and [m.n_components for m in net.layers_] == [8, 4]
    assert [m.n_components for m in make_machine("dbn", 8, 1, seed=0, deep_hidden=(5, 4, 3)).fit(x).net.layers_] == [
        5, 4, 3]
    h = model.transform(x)
    assert h.shape == (40, 4)
    np.testing.assert_allclose(model.inverse_transform(h), net.reconstruct(x), rtol=1e-6, atol=1e-6)
    assert model.sample(5, n_steps=3).shape == (5, 6) and model.sample(3, n_steps=3, start=x[:3]).shape == (3, 6)
    assert model.gibbs(x[:4]).shape == (4, 6)
    ll = model.held_out_log_likelihood(x[:30], x[30:])
    assert np.isfinite(ll["log_likelihood"]) and ll["log_z_std"] >= 0
    with pytest.raises(ValueError, match="dbn"):
        make_machine("DBN", 8, 1, 0)
    # --cd-steps reaches every machine, and every layer of the net
    assert [m.k for m in make_machine("dbn", 8, 1, 0, cd_steps=3).net.layers] == [3, 3]
    assert make_machine("RRBM", 8, 1, 0, cd_steps=3).machine.k == 3
    # Beta units learn their spread: a BetaRBM generates draws, the others their visible means
    assert [make_machine(n, 4, 1, 0).draws for n in ("RRBM", "R3BM", "BetaRBM", "GaussianRBM")] == [
        False, False, True, False]
