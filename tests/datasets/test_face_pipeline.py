"""Face preprocessing against a plain twin (grey, centred square, resize, normalise), with
pictures whose right and near-miss answers differ: off-centre content, values outside
[0, 1], integer ranges, more than one batch; and the cache keyed by what it depends on."""
from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.color import rgb2gray
from skimage.transform import resize

from fastseq.datasets import faces as faces_module
from fastseq.datasets.faces import (
    Faces,
    cache_folder,
    lfw_subset_faces,
    load_faces,
    normalise_faces,
    preprocess_faces,
)


def _grey_twin(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif a.dtype.kind in "ui":
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    else:
        a = a.astype(np.float64)
        if a.max() > 1.0 or a.min() < 0.0:
            a = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.zeros_like(a)
    if a.ndim == 3:
        a = rgb2gray(a[..., :3]) if a.shape[2] >= 3 else a[..., 0]
    return a


def _square_twin(a: np.ndarray, crop: float) -> np.ndarray:
    side = max(2, int(round(min(a.shape) * crop)))
    top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
    return a[top:top + side, left:left + side]


def _preprocess_twin(pictures, size: int, crop: float) -> np.ndarray:
    squares = [resize(_square_twin(_grey_twin(p), crop), (size, size), anti_aliasing=True, preserve_range=True)
               for p in pictures]
    return normalise_faces(np.stack(squares))


def _pictures() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    tall = rng.random((31, 17))  # off-centre content: rows and columns cropped unevenly
    tall[:5] += 3.0  # values above 1: scaled by the picture's own range
    wide_u16 = rng.integers(0, 65536, size=(12, 29), dtype=np.uint16)  # the integer type's own maximum
    rgba = rng.random((20, 24, 4))
    grey_alpha = rng.random((15, 15, 2))
    negative = rng.standard_normal((16, 18))
    flat_bool = rng.random((9, 11)) > 0.5
    return [tall, wide_u16, rgba, grey_alpha, negative, flat_bool]


@pytest.mark.parametrize("crop", [1.0, 0.6, 0.25])
def test_preprocess_matches_the_plain_twin(crop):
    pictures = _pictures()
    got = preprocess_faces(pictures, size=6, crop=crop)
    np.testing.assert_allclose(got, _preprocess_twin(pictures, 6, crop), atol=1e-6)


def test_default_size_is_64_and_batches_join_in_order(monkeypatch):
    monkeypatch.setattr(faces_module, "_BATCH", 4)  # 6 pictures: two batches, the second short
    pictures = _pictures()
    got = preprocess_faces(pictures)
    assert got.shape == (6, 64, 64)
    np.testing.assert_allclose(got, _preprocess_twin(pictures, 64, 1.0), atol=1e-6)


def test_grey_scales_integers_by_their_type_and_floats_only_outside_0_1():
    rng = np.random.default_rng(2)
    pictures = {
        "uint8": rng.integers(0, 256, (6, 5), dtype=np.uint8),
        "int16": rng.integers(-2**15, 2**15, (6, 5), dtype=np.int16),
        "float32 inside": (0.2 + 0.6 * rng.random((6, 5))).astype(np.float32),
        "max exactly 1": np.linspace(0.2, 1.0, 30).reshape(6, 5),
        "min exactly 0": np.linspace(0.0, 0.5, 30).reshape(6, 5),
        "a little above 1": np.linspace(0.25, 1.5, 30).reshape(6, 5),
        "below 0": np.linspace(-0.5, 0.5, 30).reshape(6, 5),
        "far above 1": np.linspace(0.5, 3.0, 30).reshape(6, 5),
    }
    for what, picture in pictures.items():
        got = faces_module._grey(picture)
        assert got.dtype == np.float64, what
        np.testing.assert_allclose(got, _grey_twin(picture), rtol=0, atol=1e-12, err_msg=what)
    inside = pictures["max exactly 1"]
    assert np.array_equal(faces_module._grey(inside), inside)  # never stretched to [0, 1]


def test_float32_pictures_are_pictures_and_the_faces_are_float32():
    pictures = [np.random.default_rng(3).random((9, 7)).astype(np.float32), np.eye(5, dtype=np.float16)]
    got = preprocess_faces(pictures, size=4)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _preprocess_twin(pictures, 4, 1.0), atol=1e-6)


def test_an_empty_picture_is_named_with_its_shape():
    with pytest.raises(ValueError, match=r"^Expected pictures\[1\] to be a 2-D picture .*got shape \(0, 4\)"):
        preprocess_faces([np.ones((4, 4)), np.zeros((0, 4))], size=4)


def test_each_picture_is_made_grey_once_across_many_batches(monkeypatch):
    monkeypatch.setattr(faces_module, "_BATCH", 2)  # 5 pictures: batches of 2, 2 and 1
    seen = []
    real_grey = faces_module._grey

    def grey(img, name="the image"):
        seen.append(name)
        return real_grey(img, name)

    monkeypatch.setattr(faces_module, "_grey", grey)
    pictures = _pictures()[:5]
    got = preprocess_faces(pictures, size=4)
    assert seen == [f"pictures[{i}]" for i in range(5)]
    np.testing.assert_allclose(got, _preprocess_twin(pictures, 4, 1.0), atol=1e-6)
    with pytest.raises(ValueError, match=r"^Expected pictures\[4\] to be a 2-D picture"):
        preprocess_faces(pictures[:4] + [np.ones((1, 5))], size=4)


def test_a_constant_float_picture_outside_0_1_is_a_blank_face():
    got = preprocess_faces([np.full((8, 8), 5.0), np.full((8, 8), -2.0)], size=4)
    assert np.array_equal(got, np.zeros((2, 4, 4), np.float32))


def test_the_smallest_pictures_are_2_pixels_a_side():
    assert preprocess_faces([np.eye(2)], size=2).shape == (1, 2, 2)
    with pytest.raises(ValueError, match=r"^Expected pictures\[1\] to be a 2-D picture"):
        preprocess_faces([np.eye(3), np.ones((1, 5))], size=2)
    with pytest.raises(ValueError, match=r"^Expected size to be at least 2 pixels, got 1"):
        preprocess_faces([np.eye(3)], size=1)


def test_memory_refusal_names_the_size_and_counts_every_face():
    with pytest.raises(ValueError, match=r"^size=100000 \(3 faces of 100000 x 100000 pixels\) would need 1229 GiB"):
        preprocess_faces([np.eye(3)] * 3, size=100_000)
    # one face: 4 bytes a pixel for the face, 40 for the one square being resized
    with pytest.raises(ValueError, match=r"^size=300000 \(1 faces of 300000 x 300000 pixels\) would need 3688 GiB"):
        preprocess_faces([np.eye(3)], size=300_000)


@pytest.mark.parametrize("size,error", [(0, ValueError), (2.0, TypeError)])
def test_a_bad_size_is_named(size, error):
    with pytest.raises(error, match=r"^Expected size to be an integer >= 1, got "):
        preprocess_faces([np.eye(3)], size=size)


@pytest.mark.filterwarnings("error")  # a constant face is never divided by its zero spread
def test_normalise_gives_each_face_mean_0_sd_0_3_except_constant_ones():
    x = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 7.0), np.arange(16.0).reshape(4, 4) ** 2])
    got = normalise_faces(x)
    np.testing.assert_allclose(got[[0, 2]].mean(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(got[[0, 2]].std(axis=(1, 2)), 0.3, rtol=1e-5)
    assert np.array_equal(got[1], np.zeros((4, 4), np.float32))
    # 0.1 has no exact binary value: its rounded mean leaves a spread of about 1e-17, and a
    # spread test alone would blow that up to +-0.3
    for value in (0.1, 1 / 3, 0.7, 1e-300):
        assert np.array_equal(normalise_faces(np.full((1, 5, 5), value)), np.zeros((1, 5, 5), np.float32)), value
    # per face, not over the batch: a constant 0.1 beside a varying face is still blank, and a
    # face whose spread underflows to 0 (differences of 5e-324) is blank, not divided by 0
    batch = normalise_faces(np.stack([np.full((5, 5), 0.1), np.arange(25.0).reshape(5, 5),
                                      np.pad([[5e-324]], ((0, 4), (0, 4)))]))
    assert np.array_equal(batch[[0, 2]], np.zeros((2, 5, 5), np.float32))
    np.testing.assert_allclose(batch[1].std(), 0.3, rtol=1e-5)
    none = normalise_faces(np.zeros((0, 3, 5)))
    assert none.shape == (0, 3, 5) and none.dtype == np.float32


def test_the_embedded_faces_at_25_are_only_normalised_and_otherwise_resized():
    from skimage.data import lfw_subset

    raw = lfw_subset()[:100]
    np.testing.assert_array_equal(lfw_subset_faces().images, normalise_faces(raw))
    np.testing.assert_allclose(lfw_subset_faces(size=12).images, _preprocess_twin(list(raw), 12, 1.0), atol=1e-6)
    f = lfw_subset_faces(size=8, mirror=True)
    np.testing.assert_array_equal(f.images[100:], f.images[:100, :, ::-1])
    assert f.source == "skimage.lfw_subset" and f.skipped == 0 and f.people[100] == "face_000"
    with pytest.raises(ValueError, match=r"^Expected size\b"):
        lfw_subset_faces(size=0)


def test_the_embedded_faces_at_their_own_size_are_not_resampled(monkeypatch):
    def resample(*args, **kwargs):
        raise AssertionError("the 25 x 25 faces were resampled to 25 x 25")

    monkeypatch.setattr(faces_module, "preprocess_faces", resample)
    assert lfw_subset_faces(size=25).images.shape == (100, 25, 25)


def test_people_are_found_by_canonical_name_and_the_error_lists_five():
    people = np.array(["Ann  Smith", "bob_jones", "Ann_Smith", "c", "d", "e", "f", "g"])
    f = Faces(np.zeros((8, 2, 2), np.float32), people, 0, "here")
    assert f.of("ann smith").tolist() == [0, 2] and f.of(" BOB JONES ").tolist() == [1]
    with pytest.raises(ValueError, match=r"^Expected people to name a person in here \(e\.g\. Ann  Smith, Ann_Smith, "
                                         r"bob_jones, c, d\), got 'zed'"):
        f.of("zed")


def test_names_that_differ_by_more_than_case_are_different_people():
    f = Faces(np.zeros((2, 2, 2), np.float32), np.array(["Anna_Weiß", "Anna_Weiss"]), 0, "here")
    assert f.of("anna weiß").tolist() == [0] and f.of("ANNA WEISS").tolist() == [1]


def _folder(tmp_path, n: int = 3):
    from skimage import io

    rng = np.random.default_rng(1)
    for person in ("Ann", "Bob"):
        (tmp_path / "faces" / person).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            io.imsave(tmp_path / "faces" / person / f"{i}.png", rng.integers(0, 256, (20, 16), dtype=np.uint8),
                      check_contrast=False)
    return tmp_path / "faces"


def test_folder_faces_match_the_twin_and_people_keep_their_order(tmp_path, monkeypatch):
    from skimage import io

    monkeypatch.setattr(faces_module, "_BATCH", 4)  # 6 files: two batches, people accumulated across both
    folder = _folder(tmp_path)
    f = load_faces(folder, size=5, cache=False)
    assert f.people.tolist() == ["Ann"] * 3 + ["Bob"] * 3
    pictures = [io.imread(folder / p / f"{i}.png") for p in ("Ann", "Bob") for i in range(3)]
    np.testing.assert_allclose(f.images, _preprocess_twin(pictures, 5, 1.0), atol=1e-6)
    mirrored = load_faces(folder, size=5, cache=False, mirror=True)
    np.testing.assert_array_equal(mirrored.images[6:], f.images[:, :, ::-1])
    assert mirrored.people.tolist() == f.people.tolist() * 2
    only = load_faces(folder, size=5, cache=False, people=np.array([["bob"]]))  # any array of names
    assert only.people.tolist() == ["Bob"] * 3


def test_folder_faces_count_each_unreadable_picture_and_no_other_file(tmp_path):
    folder = _folder(tmp_path)
    (folder / "notes.txt").write_text("not a picture, beside the people's folders")
    (folder / "Ann" / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "Bob" / "empty.jpg").write_bytes(b"")
    f = load_faces(folder, cache=False)
    assert f.skipped == 2 and f.people.tolist() == ["Ann"] * 3 + ["Bob"] * 3
    assert f.images.shape == (6, 64, 64) and f.source == str(folder)  # 64 pixels a side unless told
    with pytest.raises(ValueError, match=r"^Expected size to be an integer >= 1, got 0"):
        load_faces(folder, size=0, cache=False)


def test_the_cache_keys_on_size_and_crop_and_serves_the_same_faces(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))
    assert cache_folder() == tmp_path / "cache" and cache_folder().is_dir()
    folder = _folder(tmp_path)
    first = load_faces(folder, size=5)
    again = load_faces(folder, size=5)
    assert isinstance(again.images, np.memmap) and not again.images.flags.writeable
    np.testing.assert_array_equal(first.images, again.images)
    assert again.people.tolist() == first.people.tolist() and again.skipped == first.skipped == 0
    other_size, other_crop = load_faces(folder, size=6), load_faces(folder, size=5, crop=0.5)
    assert other_size.images.shape == (6, 6, 6)
    assert not np.array_equal(other_crop.images, first.images)
    metas = sorted((tmp_path / "cache").glob("faces-*.json"))
    assert len(metas) == 3 and len(list((tmp_path / "cache").glob("faces-*.npy"))) == 3
    meta = json.loads(metas[0].read_text())
    assert set(meta) == {"people", "skipped", "source"} and meta["source"] == str(folder)


def test_a_cache_entry_with_wrong_metadata_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))
    folder = _folder(tmp_path)
    first = load_faces(folder, size=5)
    (meta,) = (tmp_path / "cache").glob("faces-*.json")
    meta.write_text(json.dumps({"people": ["x"], "skipped": 0, "source": "elsewhere"}))  # 1 person, 6 faces
    again = load_faces(folder, size=5)
    assert again.people.tolist() == first.people.tolist()
    assert json.loads(meta.read_text())["people"] == first.people.tolist()


def test_cache_folder_defaults_to_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTSEQ_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "fastseq"
    assert (tmp_path / "home" / ".cache" / "fastseq").is_dir()  # parents made too


def test_a_cache_folder_that_cannot_be_made_is_none(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "file" / "cache"))
    assert cache_folder() is None
