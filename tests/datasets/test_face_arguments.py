"""Bad arguments to the face loaders fail up front with an error naming them."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastseq.datasets.faces import lfw_subset_faces, load_faces, normalise_faces, preprocess_faces


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import skimage.io

    root = tmp_path_factory.mktemp("faces")
    os.mkdir(root / "Ann")
    skimage.io.imsave(root / "Ann" / "1.png", np.eye(20, dtype=np.uint8) * 255, check_contrast=False)
    return root


@pytest.mark.parametrize("kw,error,match", [
    ({"folder": None}, TypeError, r"Expected folder to be a folder path .*, got NoneType None"),
    ({"people": -1}, TypeError, r"Expected people to be a list of names, got int -1"),
    ({"people": [1]}, TypeError, r"Expected people to be a list of names \(str\), got int 1"),
    ({"people": []}, ValueError, r"Expected people to name at least one person"),
    ({"crop": None}, TypeError, r"Expected crop to be a real number, got NoneType None"),
    ({"crop": 0.0}, ValueError, r"Expected crop to be in \(0, 1\], got 0.0"),
    ({"mirror": np.zeros(2)}, TypeError, r"Expected mirror to be True or False, got ndarray"),
    ({"cache": np.zeros(2)}, TypeError, r"Expected cache to be True or False, got ndarray"),
    ({"size": 2**63}, ValueError, r"size=9223372036854775808 \(1 faces of .* pixels\) would need \d+ GiB"),
])
def test_load_faces_names_bad_arguments(folder, kw, error, match):
    args = {"folder": folder, "size": 8, "cache": False, **kw}
    with pytest.raises(error, match=match):
        load_faces(**args)


def test_load_faces_takes_one_name(folder):
    assert load_faces(folder, size=8, people="ann", cache=False).people.tolist() == ["Ann"]


def test_lfw_subset_faces_names_bad_arguments():
    with pytest.raises(TypeError, match=r"Expected mirror to be True or False, got ndarray"):
        lfw_subset_faces(size=8, mirror=np.zeros(2))
    with pytest.raises(ValueError, match=r"size=9223372036854775808 \(100 faces .*\) would need \d+ GiB"):
        lfw_subset_faces(size=2**63)


@pytest.mark.parametrize("images,error,match", [
    (1j, TypeError, r"Expected images to hold real numbers, got dtype complex128"),
    (np.array([["a"]]), TypeError, r"Expected images to hold real numbers, got dtype <U1"),
    (np.full((1, 2, 2), np.nan), ValueError, r"Expected images to hold finite numbers, got NaN or infinity"),
    (np.zeros((2, 0, 3)), ValueError, r"Expected images to be N x H x W with H, W >= 1, got shape \(2, 0, 3\)"),
])
def test_normalise_faces_names_bad_images(images, error, match):
    with pytest.raises(error, match=match):
        normalise_faces(images)


def test_normalise_faces_of_no_faces_is_empty():
    assert normalise_faces(np.zeros((0, 0, 3))).shape == (0, 0, 3)


@pytest.mark.parametrize("kw,error,match", [
    ({"pictures": None}, TypeError, r"Expected pictures to be a sequence of images, got NoneType None"),
    ({"pictures": np.zeros(3)}, ValueError, r"Expected pictures to be a sequence of images or an N x H x W"),
    ({"pictures": [np.zeros(3)]}, ValueError, r"Expected pictures\[0\] to be a 2-D picture"),
    ({"pictures": [np.ones((4, 4)), [[1.0], [1.0, 2.0]]]}, ValueError, r"Expected pictures\[1\] to be an image array"),
    ({"pictures": [np.full((4, 4), np.inf)]}, ValueError, r"Expected pictures\[0\] to hold finite numbers"),
    ({"pictures": [np.ones((4, 4), complex)]}, ValueError, r"Expected pictures\[0\] to be an image of real numbers"),
    ({"crop": None}, TypeError, r"Expected crop to be a real number, got NoneType None"),
    ({"crop": 1.5}, ValueError, r"Expected crop to be a finite number in \[0\.0, 1\.0\], got 1\.5"),
    ({"size": 2**63}, ValueError, r"size=9223372036854775808 \(3 faces .*\) would need \d+ GiB"),
])
def test_preprocess_faces_names_bad_arguments(kw, error, match):
    args = {"pictures": np.random.default_rng(0).random((3, 12, 10)), "size": 8, "crop": 0.9, **kw}
    with pytest.raises(error, match=match):
        preprocess_faces(**args)
