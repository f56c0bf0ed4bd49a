"""What `fastseq faces` hands the protocol and what it writes from the answer, option by
option: the settings each part receives, every field of the metrics file and every pixel of
the four pictures, recomputed here from what the protocol returned."""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import skimage.io
import torch

from fastseq.cli import main
from fastseq.commands import _face_machines
from fastseq.commands.faces import _interpolation_pairs, _option_error, _outputs
from fastseq.conv import ConvConfig, evaluation
from fastseq.conv.evaluation import DIGITS_TRAINING, split_faces
from fastseq.conv.model import load_autoencoder
from fastseq.datasets import lfw_subset_faces
from fastseq.mosaic.tiles import save_png, tile

SMALL = ["--size", "16", "--max-images", "24", "--channels", "4", "4", "4", "--strides", "2", "2", "1",
         "--cnn-epochs", "1", "--fine-tune-epochs", "1", "--rbm-epochs", "2", "--hidden", "8", "--gibbs-steps", "5",
         "--ais-betas", "20", "--ais-runs", "4", "--quiet"]


def _without(argv, *options):
    """``argv`` without each of ``options`` and the one value after it."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        else:
            out.append(a)
    return out


class Stop(Exception):
    """Ends a run once what it hands on is recorded."""


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def recorded(monkeypatch):
    """The real protocol, recording what the network's training, each machine and the
    evaluation receive and return; ``stop_at`` ends the run when that part is reached."""
    rec: dict = {"machines": [], "stop_at": None}
    real_train, real_eval, real_make = (evaluation.train_autoencoder, evaluation.evaluate_faces,
                                        _face_machines.make_machine)

    def train_autoencoder(images, config, **kwargs):
        if rec["stop_at"] == "train":
            rec["train"] = dict(images=images, config=config, **kwargs)
            raise Stop
        model, reports = real_train(images, config, **kwargs)
        rec["train"] = dict(images=images, config=config, model=model, reports=reports, **kwargs)
        return model, reports

    def make_machine(name, hidden, epochs, seed, **kwargs):
        rec["machines"].append(dict(name=name, hidden=hidden, epochs=epochs, seed=seed, **kwargs))
        if rec["stop_at"] == "machines":
            raise Stop
        return real_make(name, hidden, epochs, seed, **kwargs)

    def evaluate_faces(train, test, machines, **kwargs):
        result = real_eval(train, test, machines, **kwargs)
        rec["evaluate"] = dict(train=train, test=test, machines=machines, result=result, **kwargs)
        return result

    monkeypatch.setattr(evaluation, "train_autoencoder", train_autoencoder)
    monkeypatch.setattr(evaluation, "evaluate_faces", evaluate_faces)
    monkeypatch.setattr(_face_machines, "make_machine", make_machine)
    before = torch.get_num_threads()
    yield rec
    torch.set_num_threads(before)


def _png(path):
    return skimage.io.imread(path)


def _expected(faces, tmp_path, width=8):
    arr = (np.clip(np.asarray(faces, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    save_png(tile(arr, width=width, scale=None, spacing=1), tmp_path / "expected.png", zoom=2)
    return _png(tmp_path / "expected.png")


def test_every_part_gets_its_options_and_every_output_is_the_protocols_answer(tmp_path, capsys, recorded):
    out = tmp_path / "out"
    argv = [*SMALL, "--machines", "RRBM", "GaussianRBM", "--picture-machine", "GaussianRBM", "--mix", "0.5",
            "--mix-layer", "2", "--interpolate-at", "hidden", "--seed", "4", "--cnn-learning-rate", "0.003",
            "--batch", "8", "--rbm-learning-rate", "0.01", "--cd-steps", "2", "--held-out", "0.25",
            "--output", str(out)]
    assert main(["faces", *argv]) == 0
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    faces = lfw_subset_faces(size=16)
    split = split_faces(faces.images[:24], faces.people[:24], held_out=0.25, mirror=True, seed=4)
    config = ConvConfig(16, (4, 4, 4), (2, 2, 1))

    train = recorded["train"]
    assert np.array_equal(train["images"], split.train) and train["config"] == config
    assert {k: train[k] for k in ("epochs", "fine_tune_epochs", "learning_rate", "batch_size", "seed", "device",
                                  "progress")} == dict(epochs=1, fine_tune_epochs=1, learning_rate=0.003,
                                                       batch_size=8, seed=4, device="cpu", progress=False)
    assert [m["name"] for m in recorded["machines"]] == ["GaussianRBM", "RRBM"]  # the picture's machine first
    for m in recorded["machines"]:
        assert {k: v for k, v in m.items() if k != "name"} == dict(
            hidden=8, epochs=2, seed=4, device="cpu", batch_size=8, learning_rate=0.01, progress=False,
            ais_betas=20, ais_runs=4, deep_hidden=None, cd_steps=2)
    ev = recorded["evaluate"]
    cnn, result = train["model"], ev["result"]
    assert np.array_equal(ev["train"], split.train) and np.array_equal(ev["test"], split.test)
    assert list(ev["machines"]) == ["GaussianRBM", "RRBM"] and ev["autoencoder"] is cnn
    assert (ev["gibbs_steps"], ev["seed"]) == (5, 4)

    saved = load_autoencoder(out / "faces_cnn.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), cnn.state_dict().values()))
    assert printed[0] == f"data: {len(split.train)} training and {len(split.test)} held-out 16x16 images from " \
                         f"skimage.lfw_subset"
    m = json.loads((out / "faces_metrics.json").read_text())
    assert re.fullmatch(rf"closest to real codes \(two-sample accuracy with squares nearest 0\.5\): "
                        rf"{result.best_two_sample}; wrote 6 files in {re.escape(str(out))} \(\d+ s\)", printed[-1])
    assert {k: m[k] for k in ("dataset", "source", "size", "train_images", "held_out_images", "skipped_files",
                              "mirror", "seed", "picture_machine", "best_two_sample")} == dict(
        dataset="faces", source="skimage.lfw_subset", size=16, train_images=len(split.train),
        held_out_images=len(split.test), skipped_files=0, mirror=True, seed=4, picture_machine="GaussianRBM",
        best_two_sample=result.best_two_sample)
    warned = captured.err.strip()
    assert warned.startswith("fastseq faces: warning: only 36 training and 12 held-out images")
    assert m["warnings"] == [warned.removeprefix("fastseq faces: warning: ")]
    assert m["options"]["mix"] == 0.5 and m["options"]["machines"] == ["RRBM", "GaussianRBM"]
    assert m["options"]["output"] == str(out) and "command" in m["options"]
    assert m["cnn"]["config"] == json.loads(config.to_json())
    assert {k: m["cnn"][k] for k in ("code_size", "test_mse", "pca_mse", "pca_components", "pca_over_cnn")} == dict(
        code_size=result.code_size, test_mse=result.cnn_mse, pca_mse=result.pca_mse,
        pca_components=result.pca_components, pca_over_cnn=result.pca_over_cnn)
    layers, fine = [r for r in train["reports"] if r.layer], [r for r in train["reports"] if not r.layer]
    assert m["cnn"]["layers"] == [dict(layer=r.layer, error_before=r.error_before, error_after=r.error_after,
                                       seconds=r.seconds, images_per_second=r.images_per_second) for r in layers]
    assert len(fine) == 1 and m["cnn"]["fine_tune"] == dict(
        error_before=fine[0].error_before, error_after=fine[0].error_after, seconds=fine[0].seconds,
        images_per_second=fine[0].images_per_second)
    for name, s in result.scores.items():
        assert m["machines"][name] == json.loads(json.dumps(dict(
            seconds=s.seconds, image_mse=s.image_mse, code_mse_relative=s.code_mse_relative, ais=s.log_likelihood,
            generate_seconds=s.generate_seconds, two_sample_accuracy=s.two_sample_accuracy,
            two_sample_accuracy_quadratic=s.two_sample_accuracy_quadratic, generated_spread=s.generated_spread,
            generated_spread_within_2x=s.generated_spread_within_2x)))
    assert list(m["machines"]) == list(result.scores)

    # the pictures: 24 of the faces (all of them, in a seeded order), autoencoded through the picture's
    # machine mixed at layer 2, the first 64 of its generated codes decoded, and 8 interpolations
    every = np.concatenate([split.test, split.train])
    shown = every[np.sort(np.random.default_rng(6).choice(len(every), min(64, len(every)), replace=False))]
    stacked = result.stacked["GaussianRBM"]
    assert np.array_equal(_png(out / "faces_data.png"), _expected(shown, tmp_path))
    assert np.array_equal(_png(out / "faces_autoencoded.png"),
                          _expected(stacked.autoencode(shown, mix=0.5, mix_layer=2), tmp_path))
    assert np.array_equal(_png(out / "faces_generated.png"),
                          _expected(cnn.decode(result.generated_codes["GaussianRBM"][:64]), tmp_path))
    rng = np.random.default_rng(5)
    images = np.concatenate([split.train, split.test])
    names = np.concatenate([split.people_train, split.people_test])
    pairs = [rng.choice(np.unique(names), 2, replace=False) for _ in range(8)]
    a = images[[rng.choice(np.flatnonzero(names == first)) for first, _ in pairs]]
    b = images[[rng.choice(np.flatnonzero(names == second)) for _, second in pairs]]
    steps = stacked.interpolate(a, b, steps=8, at="hidden")
    assert np.array_equal(_png(out / "faces_interpolated.png"), _expected(steps.reshape(-1, 16, 16), tmp_path, 8))


def test_sixty_four_faces_are_shown_of_more(tmp_path, capsys, recorded):
    out = tmp_path / "out"
    argv = [*SMALL, "--max-images", "40", "--machines", "RRBM", "--output", str(out)]
    assert main(["faces", *argv]) == 0
    split = recorded["evaluate"]
    every = np.concatenate([split["test"], split["train"]])
    assert len(every) == 80
    shown = every[np.sort(np.random.default_rng(2).choice(80, 64, replace=False))]
    assert np.array_equal(_png(out / "faces_data.png"), _expected(shown, tmp_path))


@pytest.mark.parametrize("dataset,epochs", [("faces", 100), ("mnist", 20)])
def test_the_machines_train_the_datasets_default_epochs(tmp_path, capsys, recorded, dataset, epochs):
    recorded["stop_at"] = "machines"
    argv = _without(SMALL, "--rbm-epochs")
    argv[1] = "28" if dataset == "mnist" else "16"
    with pytest.raises(Stop):
        main(["faces", *argv, "--dataset", dataset, "--output", str(tmp_path / "o"), "--threads", "2"])
    (made,) = recorded["machines"]
    assert made["name"] == "RRBM" and made["epochs"] == epochs and made["learning_rate"] is None
    assert (made["cd_steps"], made["batch_size"], made["progress"]) == (1, 16, False)
    assert torch.get_num_threads() == 2


def test_the_digits_train_the_network_with_their_own_settings_unless_told(tmp_path, capsys, recorded):
    recorded["stop_at"] = "train"
    argv = _without(SMALL, "--cnn-epochs", "--fine-tune-epochs")
    argv[1] = "28"
    with pytest.raises(Stop):
        main(["faces", *argv, "--dataset", "mnist", "--output", str(tmp_path / "o")])
    settings = {k: recorded["train"][k] for k in DIGITS_TRAINING}
    assert settings == DIGITS_TRAINING
    assert "data: 19 training and 5 held-out 28x28 images from embedded MNIST digits" in capsys.readouterr().out
    with pytest.raises(Stop):  # 1,500 digits unless --max-images says otherwise
        main(["faces", *_without(argv, "--max-images"), "--dataset", "mnist", "--output", str(tmp_path / "o1")])
    assert "data: 1200 training and 300 held-out 28x28 images from embedded MNIST digits" in capsys.readouterr().out
    with pytest.raises(Stop):
        main(["faces", *argv, "--dataset", "mnist", "--cnn-epochs", "3", "--fine-tune-epochs", "0",
              "--output", str(tmp_path / "o2")])
    assert (recorded["train"]["epochs"], recorded["train"]["fine_tune_epochs"]) == (3, 0)
    assert {k: recorded["train"][k] for k in DIGITS_TRAINING if "epochs" not in k} == {
        k: v for k, v in DIGITS_TRAINING.items() if "epochs" not in k}


def test_faces_train_the_network_with_the_librarys_defaults(tmp_path, capsys, recorded):
    recorded["stop_at"] = "train"
    argv = _without(SMALL, "--cnn-epochs", "--fine-tune-epochs")
    with pytest.raises(Stop):
        main(["faces", *argv, "--output", str(tmp_path / "o"), "--no-mirror", "--held-out", "0.5"])
    got = recorded["train"]
    assert not {"epochs", "fine_tune_epochs", "fine_tune_rate"} & set(got)  # the library's own defaults
    assert len(got["images"]) == 12  # half of 24, no mirror images


def test_outputs_are_named_by_the_dataset(tmp_path):
    for dataset, prefix in (("faces", "faces"), ("mnist", "mnist")):
        paths = _outputs(argparse.Namespace(dataset=dataset, output=str(tmp_path)))
        assert paths == {**{n: tmp_path / f"{prefix}_{n}.png" for n in ("data", "autoencoded", "generated",
                                                                         "interpolated")},
                         "metrics": tmp_path / f"{prefix}_metrics.json", "cnn": tmp_path / f"{prefix}_cnn.safetensors"}


def test_every_earlier_result_is_counted_and_a_run_refused(tmp_path, capsys):
    for name in ("faces_data.png", "faces_metrics.json", "faces_cnn.safetensors"):
        (tmp_path / name).write_bytes(b"mine")
    assert main(["faces", *SMALL, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"got {tmp_path / 'faces_data.png'} (and 2 more); use --force" in err
    assert (tmp_path / "faces_data.png").read_bytes() == b"mine"


@pytest.mark.parametrize("device,words", [("cuda", "a CUDA device for --device cuda"),
                                          ("cuda:1", "a CUDA device for --device cuda:1"),
                                          ("gpu", "--device cpu or cuda[:N], got 'gpu'")])
def test_devices_other_than_the_cpu_need_cuda(tmp_path, capsys, monkeypatch, device, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["faces", *SMALL, "--device", device, "--output", str(tmp_path)]) == 2
    assert words in capsys.readouterr().err


def test_cuda_is_taken_where_torch_has_it(tmp_path, capsys, monkeypatch, recorded):
    recorded["stop_at"] = "train"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(Stop):
        main(["faces", *SMALL, "--device", "cuda:0", "--output", str(tmp_path)])
    assert recorded["train"]["device"] == "cuda:0"


def test_the_same_person_twice_and_digits_from_a_folder_are_refused(tmp_path, capsys):
    assert main(["faces", *SMALL, "--people", "face_001", "face_001", "--output", str(tmp_path)]) == 2
    assert "two different people, got 'face_001' twice" in capsys.readouterr().err
    for extra in (["--data", str(tmp_path)], ["--people", "a", "b"]):
        assert main(["faces", *SMALL, "--dataset", "mnist", *extra, "--output", str(tmp_path)]) == 2
        assert "Expected no --data or --people with --dataset mnist" in capsys.readouterr().err


def test_mix_layer_reaches_the_top_layer_and_no_further(tmp_path, capsys, recorded):
    recorded["stop_at"] = "train"
    with pytest.raises(Stop):
        main(["faces", *SMALL, "--mix-layer", "3", "--output", str(tmp_path)])
    assert main(["faces", *SMALL, "--mix-layer", "4", "--output", str(tmp_path)]) == 2
    assert "Expected --mix-layer in 1..3, got 4." in capsys.readouterr().err


def test_named_people_are_repeated_to_fill_the_row():
    images = np.arange(6 * 2 * 2, dtype=np.float32).reshape(6, 2, 2)
    names = np.array(["Ann Lee", "Bo", "ann_lee", "Cy", "Bo", "Ann Lee"])
    args = argparse.Namespace(seed=0, people=["ANN LEE", "cy"])
    a, b = _interpolation_pairs(args, images[:4], images[4:], names[:4], names[4:], width=5)
    assert np.array_equal(a, images[[0, 2, 5, 0, 2]]) and np.array_equal(b, images[[3] * 5])
    with pytest.raises(Exception, match=r"--people to name people in the data \(e\.g\. Ann Lee, Bo, Cy, ann_lee\), "
                                        r"got 'Dee'"):
        _interpolation_pairs(argparse.Namespace(seed=0, people=["Dee", "Bo"]), images[:4], images[4:], names[:4],
                             names[4:])
    with pytest.raises(Exception, match="two different people to interpolate between, got one"):
        _interpolation_pairs(argparse.Namespace(seed=0, people=None), images[:2], images[2:3],
                             np.array(["Bo", "Bo"]), np.array(["Bo"]))


@pytest.mark.parametrize("message,expected", [
    ("size=3 is too small", "--size 3 is too small"),
    ("Expected data to be a folder", "Expected --data to be a folder"),
    ("Expected size >= 8", "Expected --size >= 8"),
    ("Expected crop in (0, 1]", "Expected --crop in (0, 1]"),
    ("Expected seed to be an int", "Expected --seed to be an int"),
    ("a size=3 inside", "a size=3 inside"),
])
def test_library_errors_name_the_options(message, expected):
    assert str(_option_error(ValueError(message))) == expected


def test_a_network_read_from_model_is_used_as_it_is_and_not_written_again(tmp_path, capsys, recorded):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["faces", *SMALL, "--machines", "RRBM", "--output", str(first)]) == 0
    net = first / "faces_cnn.safetensors"
    before = net.read_bytes()
    recorded.pop("train")
    assert main(["faces", *SMALL, "--machines", "RRBM", "--model", str(net), "--output", str(second)]) == 0
    assert "train" not in recorded  # not trained again
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.search(rf"; wrote 5 files in {re.escape(str(second))} \(\d+ s\)$", last), last
    assert net.read_bytes() == before and not (second / "faces_cnn.safetensors").exists()
    m = json.loads((second / "faces_metrics.json").read_text())
    assert m["cnn"]["loaded_from"] == str(net) and "layers" not in m["cnn"]
    loaded = recorded["evaluate"]["autoencoder"]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 load_autoencoder(net).state_dict().values()))


def test_pictures_map_minus_one_to_black_and_one_to_white_clipping_beyond(tmp_path):
    from fastseq.commands.faces import _picture

    faces = np.array([[[-3.0, -1.0], [0.0, 1.0]], [[3.0, 0.5], [-0.5, 1e9]]], dtype=np.float32)
    _picture(faces, tmp_path / "p.png", width=2)
    picture = _png(tmp_path / "p.png")
    # two 2 x 2 faces side by side, a white line between them, each pixel drawn 2 x 2
    expected = np.array([[0, 0, 255, 255, 191], [128, 255, 255, 64, 255]], dtype=np.uint8)
    assert np.array_equal(picture[::2, ::2], expected)


def test_pictures_of_float32_faces_are_scaled_in_float64(tmp_path):
    """(x + 1) / 2 of float32's -0.4 is 0.30000001 in float32 arithmetic, which 8 bits draw
    as 77, and 0.29999999 in float64, drawn as 76: the picture takes the float64 value."""
    from fastseq.commands.faces import _picture

    _picture(np.full((1, 2, 2), -0.4, dtype=np.float32), tmp_path / "p.png", width=1)
    assert np.unique(_png(tmp_path / "p.png")).tolist() == [76]
