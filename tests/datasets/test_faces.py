"""Face data: the embedded LFW faces, a folder loader on real JPEGs, the cache."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.io
from skimage.data import lfw_subset

from fastseq.datasets import faces as F


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def lfw_dir(tmp_path_factory):
    """Real faces written as JPEGs in LFW's layout: two people, one colour picture of
    another size, one corrupt file, one text file that is not an image."""
    raw = (lfw_subset()[:100] * 255).astype(np.uint8)
    root = tmp_path_factory.mktemp("lfw")
    for person, idx in (("Ann_Smith", range(0, 4)), ("Bob_Jones", range(4, 7))):
        (root / person).mkdir()
        for k, i in enumerate(idx):
            skimage.io.imsave(root / person / f"{person}_{k:04d}.jpg", raw[i], check_contrast=False)
    colour = np.stack([raw[10], raw[11], raw[12]], -1)
    big = np.kron(colour, np.ones((2, 3, 1), np.uint8))  # 50 x 75 RGB, not square
    skimage.io.imsave(root / "Bob_Jones" / "Bob_Jones_0009.jpg", big, check_contrast=False)
    (root / "Ann_Smith" / "Ann_Smith_0099.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "Ann_Smith" / "notes.txt").write_text("not an image")
    return root


def test_embedded_faces_are_normalised_and_mirrored():
    f = F.lfw_subset_faces()
    assert f.images.shape == (100, 25, 25) and f.images.dtype == np.float32
    assert np.allclose(f.images.mean(axis=(1, 2)), 0, atol=0.01)
    sd = f.images.std(axis=(1, 2))
    assert np.all(sd <= 0.3 + 1e-5) and np.all(sd > 0.25)
    assert f.images.min() >= -1 and f.images.max() <= 1
    m = F.lfw_subset_faces(size=16, mirror=True)
    assert m.images.shape == (200, 16, 16)
    assert np.array_equal(m.images[100:], m.images[:100, :, ::-1])
    assert list(m.people[[0, 100]]) == ["face_000", "face_000"]


def test_folder_loader_reads_real_jpegs_skips_the_corrupt_one(lfw_dir):
    f = F.load_faces(lfw_dir, size=20)
    assert f.images.shape == (8, 20, 20)
    assert f.skipped == 1
    assert sorted(set(f.people)) == ["Ann_Smith", "Bob_Jones"]
    assert np.allclose(f.images.std(axis=(1, 2)), 0.3, atol=0.03)
    # the colour picture of another size came through the same preprocessing
    bob = f.images[f.of("bob jones")]
    assert bob.shape == (4, 20, 20) and np.all(np.isfinite(bob))


def test_jpeg_faces_match_the_original_pixels(lfw_dir):
    raw = lfw_subset()[:1]
    f = F.load_faces(lfw_dir, size=25, people=["Ann_Smith"])
    expected = F.normalise_faces(raw)[0]
    assert np.corrcoef(f.images[0].ravel(), expected.ravel())[0, 1] > 0.98  # JPEG loses a little


def test_people_are_selected_by_name(lfw_dir):
    f = F.load_faces(lfw_dir, size=12, people=["bob jones"])
    assert set(f.people) == {"Bob_Jones"} and len(f.people) == 4
    with pytest.raises(ValueError, match="people.*Carl"):
        F.load_faces(lfw_dir, size=12, people=["Carl"])
    with pytest.raises(ValueError, match="people"):
        f.of("Ann_Smith")


def test_second_load_comes_from_the_memory_mapped_cache(lfw_dir, tmp_path):
    first = F.load_faces(lfw_dir, size=16)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy")
    second = F.load_faces(lfw_dir, size=16)
    assert isinstance(second.images, np.memmap)
    assert np.array_equal(np.asarray(first.images), np.asarray(second.images))
    assert list(second.people) == list(first.people) and second.skipped == 1
    F.load_faces(lfw_dir, size=17)  # another size is another entry
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_unwritable_cache_is_no_crash(lfw_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("FASTSEQ_CACHE", str(blocker / "cache"))
    assert F.cache_folder() is None
    assert F.load_faces(lfw_dir, size=10).images.shape == (8, 10, 10)


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="data"):
        F.load_faces(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="image files"):
        F.load_faces(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="1 unreadable"):
        F.load_faces(tmp_path / "broken", cache=False)


def test_mixed_sizes_and_modes_preprocess_to_one_shape():
    rng = np.random.default_rng(0)
    pictures = [rng.random((30, 40, 3)), (rng.random((9, 12, 4)) * 255).astype(np.uint8),
                (rng.random((20, 20)) * 65535).astype(np.uint16), rng.random((5, 5, 1))]
    out = F.preprocess_faces(pictures, size=8)
    assert out.shape == (4, 8, 8) and np.all(np.abs(out) <= 1)
    with pytest.raises(ValueError, match="size"):
        F.preprocess_faces(pictures, size=1)
    with pytest.raises(ValueError, match="2-D picture"):
        F.preprocess_faces([np.zeros((4, 4, 7))], size=4)


def test_normalise_leaves_input_alone_and_handles_constant_images():
    x = np.stack([np.ones((4, 4)), np.arange(16.0).reshape(4, 4)])
    before = x.copy()
    out = F.normalise_faces(x)
    assert np.array_equal(x, before)
    assert np.all(out[0] == 0)
