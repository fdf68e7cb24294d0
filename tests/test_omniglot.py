"""Omniglot: split facts, readers (npz, zip, folder), area resize, rotations, cache, download."""

from __future__ import annotations

import csv
import http.server
import io
import math
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import shared_data_dir
from umeta.data import ImageSet
from umeta.data import omniglot
from umeta.data.omniglot import (
    area_weights,
    load_omniglot,
    read_omniglot,
    read_omniglot_archive,
    read_omniglot_npz,
    resize_ink,
    with_rotations,
)
from umeta.data.splits import (
    BACKGROUND_ALPHABETS,
    EVALUATION_ALPHABETS,
    SPLITS,
    source_class_names,
    split_class_names,
)
from umeta.errors import UmetaError

ROTATIONS = ("rot000", "rot090", "rot180", "rot270")


def area_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Exact area average by plain loops over output pixels and overlapping input pixels."""
    n = img.shape[0]
    scale = n / size
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            total = 0.0
            for a in range(math.floor(i * scale), min(n, math.ceil((i + 1) * scale))):
                wa = min((i + 1) * scale, a + 1) - max(i * scale, a)
                for b in range(math.floor(j * scale), min(n, math.ceil((j + 1) * scale))):
                    wb = min((j + 1) * scale, b + 1) - max(j * scale, b)
                    total += wa * wb * img[a, b]
            out[i, j] = total / scale**2
    return out


def png_bytes(ink: np.ndarray) -> bytes:
    """A 1-bit PNG like Omniglot's: white background, black ink."""
    buf = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_tree(root: Path, ink: np.ndarray, names: list[tuple[str, str, int]]) -> None:
    """Write ink (chars, drawings, H, W) as root/<alphabet>/<character>/<id>_<drawer>.png."""
    for (alphabet, character, cid), drawings in zip(names, ink):
        folder = root / alphabet / character
        folder.mkdir(parents=True)
        for d, im in enumerate(drawings, start=1):
            (folder / f"{cid:04d}_{d:02d}.png").write_bytes(png_bytes(im))


# ---------------------------------------------------------------------------------------------
# Synthetic data: no files needed.


@pytest.mark.parametrize("size", [28, 13, 35, 21, 150])
def test_resize_ink_matches_loop_reference(size):
    gen = torch.Generator().manual_seed(size)
    ink = torch.rand(3, 105, 105, generator=gen) < 0.3
    got = resize_ink(ink, size, chunk=2)
    for k in range(3):
        want = np.round(255 * area_reference(ink[k].numpy().astype(float), size))
        assert np.abs(got[k].numpy().astype(float) - want).max() <= 1  # float32 vs float64 ties


@pytest.mark.parametrize("size", [35, 21, 15])
def test_resize_ink_equals_average_pooling_for_whole_factors(size):
    gen = torch.Generator().manual_seed(1)
    ink = torch.rand(4, 2, 105, 105, generator=gen)
    want = F.adaptive_avg_pool2d(ink.reshape(8, 1, 105, 105), size).reshape(4, 2, size, size)
    got = resize_ink(ink, size)
    assert got.shape == (4, 2, size, size) and got.dtype == torch.uint8
    assert torch.equal(got, want.mul(255).round().to(torch.uint8))


def test_area_weights_preserve_mass():
    w = area_weights(105, 28)
    assert w.shape == (28, 105)
    torch.testing.assert_close(w.sum(1), torch.ones(28))
    torch.testing.assert_close(w.sum(0), torch.full((105,), 28 / 105))
    assert int((w > 0).sum(1).max()) == 5  # 3.75 pixels wide: never more than 5 touched


def test_with_rotations_matches_pil(tiny_images):
    rotated = with_rotations(tiny_images)
    assert len(rotated) == 4 * len(tiny_images)
    assert rotated.class_names[:4] == ["c00", "c00/rot090", "c00/rot180", "c00/rot270"]
    assert rotated.groups[:8] == ["g0"] * 8
    assert torch.equal(rotated.class_counts(), torch.full((48,), 8))
    for c in (0, 5):
        original = tiny_images.images[tiny_images.labels == c]
        for k in range(4):
            got = rotated.images[rotated.labels == 4 * c + k]
            for img_got, img in zip(got, original):
                pil = Image.fromarray(img[0].numpy()).rotate(90 * k)  # counter-clockwise
                assert np.array_equal(img_got[0].numpy(), np.asarray(pil))


def test_with_rotations_rejects_unlabeled(tiny_images):
    data = ImageSet(tiny_images.images, torch.full((96,), -1), [], None, "raw")
    with pytest.raises(UmetaError, match="unlabeled"):
        with_rotations(data)


def test_archive_reader_on_synthetic_folder_and_zip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ink = (torch.rand(3, 2, 12, 12, generator=gen) < 0.3).numpy()
    # written out of id order: the reader sorts characters by id and drawings by drawer
    names = [("Zeta", "character02", 7), ("Alpha", "character01", 3), ("Zeta", "character01", 5)]
    write_tree(tmp_path / "images_x" / "images_x", ink, names)
    (tmp_path / "images_x" / "images_x" / "README.txt").write_text("not an image")
    order = [1, 2, 0]
    want_names = ["Alpha/character01", "Zeta/character01", "Zeta/character02"]
    got, got_names = read_omniglot_archive(tmp_path / "images_x")
    assert got_names == want_names
    assert torch.equal(got, torch.from_numpy(ink[order]))
    archive = tmp_path / "images_x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "images_x").rglob("*"), reverse=True):
            zf.write(p, p.relative_to(tmp_path / "images_x").as_posix())
        zf.writestr("__MACOSX/images_x/._junk.png", b"resource fork")
    got_zip, zip_names = read_omniglot(archive)
    assert zip_names == want_names and torch.equal(got_zip, got)


def test_archive_reader_errors(tmp_path):
    bad = tmp_path / "images_background.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(UmetaError, match="cannot read the Omniglot zip .*delete it"):
        read_omniglot(bad)
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as zf:
        zf.writestr("0001_01.png", png_bytes(np.zeros((5, 5), bool)))
    with pytest.raises(UmetaError, match="does not follow the Omniglot layout"):
        read_omniglot(tmp_path / "flat.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("notes.txt", "nothing")
    with pytest.raises(UmetaError, match="holds no Omniglot PNGs"):
        read_omniglot(tmp_path / "empty.zip")
    with zipfile.ZipFile(tmp_path / "uneven.zip", "w") as zf:
        for name in ("A/character01/0001_01.png", "A/character01/0001_02.png",
                     "A/character02/0002_01.png"):
            zf.writestr(name, png_bytes(np.zeros((5, 5), bool)))
    with pytest.raises(UmetaError, match=r"different numbers of drawings \[1, 2\]"):
        read_omniglot(tmp_path / "uneven.zip")
    with zipfile.ZipFile(tmp_path / "broken.zip", "w") as zf:
        zf.writestr("A/character01/0001_01.png", b"\x89PNG garbage")
    with pytest.raises(UmetaError, match="cannot decode"):
        read_omniglot(tmp_path / "broken.zip")
    with pytest.raises(UmetaError, match="not an Omniglot"):
        read_omniglot(tmp_path / "thing.csv")


def test_npz_reader_errors(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(UmetaError, match="cannot read the Omniglot npz"):
        read_omniglot_npz(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "other.npz", pixels=np.zeros((2, 2)))
    with pytest.raises(UmetaError, match="cannot read the Omniglot npz"):
        read_omniglot_npz(tmp_path / "other.npz")
    np.savez(tmp_path / "uint8.npz", images=np.zeros((964, 1, 4, 4), np.uint8))
    with pytest.raises(UmetaError, match="must be bool"):
        read_omniglot_npz(tmp_path / "uint8.npz")
    np.savez(tmp_path / "rows.npz", images=np.ones((10, 2, 4, 4), bool))
    with pytest.raises(UmetaError, match="has 10 characters.*964 or 659"):
        read_omniglot_npz(tmp_path / "rows.npz")


def test_npz_reader_names_rows_and_flips_to_ink(tmp_path):
    background = np.ones((659, 2, 6, 6), bool)
    background[3, 1, 2, 4] = False
    np.savez_compressed(tmp_path / "any_name.npz", images=background)
    ink, names = read_omniglot_npz(tmp_path / "any_name.npz")
    assert names == source_class_names("images_evaluation")
    assert ink.dtype == torch.bool and int(ink.sum()) == 1 and bool(ink[3, 1, 2, 4])


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"split": "lake"}, "unknown Omniglot split 'lake'"),
     ({"part": "background"}, "unknown part 'background' of the 'vinyals' split"),
     ({"image_size": 0}, "image_size must be a positive integer"),
     ({"image_size": 28.0}, "image_size must be a positive integer")],
)
def test_load_argument_errors(kw, match, tmp_path):
    with pytest.raises(UmetaError, match=match):
        load_omniglot(**kw, data_dir=tmp_path, cache_dir=tmp_path, download=False)


def test_missing_data_offline_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("UMETA_DATA", raising=False)
    (tmp_path / "d").mkdir()  # a folder without Omniglot in it
    with pytest.raises(UmetaError) as info:
        load_omniglot("val", data_dir=tmp_path / "d", cache_dir=tmp_path / "c", download=False)
    message = str(info.value)
    assert "\n" not in message
    for needle in (str(tmp_path / "d"), str(tmp_path / "c"), "images_background.npz",
                   "--data-dir", "$UMETA_DATA", "download=False"):
        assert needle in message


def test_environment_variables_locate_data(tmp_path, monkeypatch):
    ink = np.zeros((1, 20, 8, 8), bool)
    ink[0, :, 2:5, 3] = True
    folder = tmp_path / "data" / "omniglot" / "images_evaluation"
    write_tree(folder, ink, [("Avesta", "character07", 1069)])
    monkeypatch.setenv("UMETA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("UMETA_CACHE", str(tmp_path / "cache"))
    data = load_omniglot("evaluation", split="background-evaluation", image_size=4, download=False)
    assert data.class_names == ["Avesta/character07"] and data.groups == ["Avesta"]
    assert data.images.shape == (20, 1, 4, 4)
    assert torch.equal(data.images[0, 0], resize_ink(torch.from_numpy(ink[0, 0]), 4))
    processed = tmp_path / "cache" / "omniglot" / "processed"
    assert (processed / "images_evaluation_4px.safetensors").is_file()


# ---------------------------------------------------------------------------------------------
# Split facts against the published files.


@pytest.fixture(scope="module")
def omniglot_dir() -> Path:
    path = shared_data_dir() / "omniglot"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set UMETA_SHARED_DATA)")
    return path


@pytest.mark.parametrize("part", ["train", "val", "test", "trainval"])
@pytest.mark.realdata
def test_vinyals_split_equals_published_files(omniglot_dir, part):
    lines = (omniglot_dir / "splits" / f"{part}.txt").read_text().split()
    assert [f"{c}/{r}" for c in split_class_names("vinyals", part) for r in ROTATIONS] == lines
    sizes = {"train": 1028, "val": 172, "test": 423, "trainval": 1200}
    assert len(lines) == 4 * sizes[part]


@pytest.mark.realdata
def test_source_names_equal_character_index(omniglot_dir):
    with open(omniglot_dir / "character_index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for source in ("images_background", "images_evaluation"):
        want = [(int(r["npz_row"]), f"{r['alphabet']}/{r['character']}") for r in rows
                if r["npz_file"] == f"{source}.npz"]
        assert [n for _, n in sorted(want)] == source_class_names(source)
    vinyals = {p: set(split_class_names("vinyals", p)) for p in ("train", "val", "test")}
    assert all(r["vinyals_split"] in vinyals and f"{r['alphabet']}/{r['character']}"
               in vinyals[r["vinyals_split"]] for r in rows)
    assert [int(r["global_char_id"]) for r in rows] == list(range(1, 1624))


def test_vinyals_split_is_whole_alphabets_except_gurmukhi():
    parts = {p: split_class_names("vinyals", p) for p in ("train", "val", "test")}
    everything = source_class_names("images_background") + source_class_names("images_evaluation")
    assert sorted(sum(parts.values(), [])) == sorted(everything)  # disjoint and complete
    owners: dict[str, set[str]] = {}
    for part, names in parts.items():
        for n in names:
            owners.setdefault(n.split("/")[0], set()).add(part)
    assert {a: p for a, p in owners.items() if len(p) > 1} == {"Gurmukhi": {"train", "test"}}
    assert [n for n in parts["test"] if n.startswith("Gurmukhi")] == [
        f"Gurmukhi/character{i}" for i in (42, 43, 44, 45)]
    assert owners.keys() == {a for a, _ in BACKGROUND_ALPHABETS + EVALUATION_ALPHABETS}
    assert SPLITS["background-evaluation"] == ("background", "evaluation")


# ---------------------------------------------------------------------------------------------
# Real data (loaded once per module).


@pytest.fixture(scope="module")
def raw_background(omniglot_dir):
    return read_omniglot_npz(omniglot_dir / "images_background.npz")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("umeta_cache")


@pytest.fixture(scope="module")
def train(omniglot_dir, cache_dir):
    return load_omniglot("train", data_dir=omniglot_dir, cache_dir=cache_dir, progress=False)


@pytest.mark.realdata
def test_npz_shapes_names_and_ink(raw_background):
    ink, names = raw_background
    assert ink.shape == (964, 20, 105, 105) and ink.dtype == torch.bool
    assert names[0] == "Arcadian/character01" and names[-1] == "Tifinagh/character55"
    fraction = ink.count_nonzero().item() / ink.numel()
    assert 0.05 < fraction < 0.11  # strokes on a white page
    assert bool(ink.flatten(2).any(2).all())  # every drawing has ink


@pytest.mark.realdata
def test_zip_reader_equals_npz(omniglot_dir, raw_background):
    ink, names = raw_background
    zip_ink, zip_names = read_omniglot(omniglot_dir / "images_background_small1.zip")
    assert len(zip_names) == 136 and zip_ink.shape == (136, 20, 105, 105)
    rows = [names.index(n) for n in zip_names]
    assert rows == sorted(rows)  # same (character-id) order
    assert torch.equal(zip_ink, ink[rows])


@pytest.mark.realdata
def test_vinyals_train_load(train, raw_background):
    assert train.images.shape == (1028 * 20, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.class_names == split_class_names("vinyals", "train")
    assert train.groups == [n.split("/")[0] for n in train.class_names]
    assert torch.equal(train.class_counts(), torch.full((1028,), 20))
    assert train.name == "omniglot/vinyals/train"
    assert train.images.min() == 0 and train.images.max() == 255
    # images equal a plain-loop area average of the 105 px originals
    ink, names = raw_background
    row = {n: r for r, n in enumerate(names)}
    for cls, drawing in [("Korean/character07", 3), ("Latin/character26", 19)]:
        got = train.images[train.labels == train.class_names.index(cls)][drawing, 0]
        want = area_reference(ink[row[cls], drawing].double().numpy(), 28)
        assert np.abs(got.numpy() - np.round(255 * want)).max() <= 1
    # area averaging keeps the ink fraction (classes of the part from the background archive)
    classes = [i for i, n in enumerate(train.class_names) if n in row]
    mask = torch.isin(train.labels, torch.tensor(classes))
    mean_small = train.images[mask].double().mean().item() / 255
    big = ink[[row[train.class_names[i]] for i in classes]]
    mean_big = big.count_nonzero().item() / big.numel()
    assert abs(mean_small - mean_big) < 5e-4


@pytest.mark.realdata
def test_vinyals_parts_sizes_and_trainval(omniglot_dir, cache_dir, train):
    kw = dict(data_dir=omniglot_dir, cache_dir=cache_dir, progress=False)
    val, test = load_omniglot("val", **kw), load_omniglot("test", **kw)
    trainval = load_omniglot("trainval", **kw)
    assert (val.num_classes, test.num_classes, trainval.num_classes) == (172, 423, 1200)
    assert len(test) == 423 * 20 and test.class_names[0] == "Gurmukhi/character42"
    assert trainval.class_names == train.class_names + val.class_names
    assert torch.equal(trainval.images, torch.cat([train.images, val.images]))


@pytest.mark.realdata
def test_background_evaluation_split(omniglot_dir, cache_dir):
    kw = dict(split="background-evaluation", data_dir=omniglot_dir, cache_dir=cache_dir,
              progress=False)
    background, evaluation = load_omniglot("background", **kw), load_omniglot("evaluation", **kw)
    assert background.num_classes == 964 and evaluation.num_classes == 659
    assert list(dict.fromkeys(background.groups)) == [a for a, _ in BACKGROUND_ALPHABETS]
    assert list(dict.fromkeys(evaluation.groups)) == [a for a, _ in EVALUATION_ALPHABETS]
    assert background.name == "omniglot/background-evaluation/background"


@pytest.mark.realdata
def test_rotations(omniglot_dir, cache_dir, train):
    rotated = load_omniglot("train", rotations=True, data_dir=omniglot_dir, cache_dir=cache_dir,
                            progress=False)
    assert rotated.num_classes == 4 * 1028 and len(rotated) == 4 * len(train)
    lines = (omniglot_dir / "splits" / "train.txt").read_text().split()
    assert rotated.class_names == [line.removesuffix("/rot000") for line in lines]
    assert rotated.groups[4:8] == [train.groups[1]] * 4
    c = train.class_names.index("Greek/character05")
    for k, suffix in enumerate(("", "/rot090", "/rot180", "/rot270")):
        label = rotated.class_names.index(f"Greek/character05{suffix}")
        got = rotated.images[rotated.labels == label]
        assert torch.equal(got, torch.rot90(train.images[train.labels == c], k, dims=(2, 3)))


@pytest.mark.realdata
def test_cache_is_used_and_invalidated(omniglot_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "images_background.zip").write_bytes(
        (omniglot_dir / "images_background_small1.zip").read_bytes())
    kw = dict(split="background-evaluation", image_size=20, data_dir=data, cache_dir=tmp_path,
              download=False)
    first = load_omniglot("background", **kw)
    assert first.num_classes == 136 and first.images.shape == (2720, 1, 20, 20)
    assert (tmp_path / "omniglot" / "processed" / "images_background_20px.safetensors").is_file()
    calls = []
    real_reader = omniglot.read_omniglot
    monkeypatch.setattr(omniglot, "read_omniglot", lambda p: calls.append(p) or real_reader(p))
    second = load_omniglot("background", **kw)
    assert calls == [] and torch.equal(first.images, second.images)
    assert second.class_names == first.class_names
    mtime = (data / "images_background.zip").stat().st_mtime_ns + 10**9
    os.utime(data / "images_background.zip", ns=(mtime, mtime))  # the source changed: reread
    third = load_omniglot("background", **kw)
    assert calls == [data / "images_background.zip"] and torch.equal(third.images, first.images)
    # a corrupt cache file is rebuilt, not trusted
    cache_file = tmp_path / "omniglot" / "processed" / "images_background_20px.safetensors"
    cache_file.write_bytes(b"garbage")
    assert torch.equal(load_omniglot("background", **kw).images, first.images)
    assert len(calls) == 2
    # vinyals needs characters the small archive lacks
    with pytest.raises(UmetaError, match="requested classes are not in"):
        load_omniglot("val", data_dir=data, cache_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------
# Download on first use, from a local server.


class _ZipServer(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def zip_server(omniglot_dir):
    payload = (omniglot_dir / "images_background_small1.zip").read_bytes()
    _ZipServer.files = {"/mirror/images_background.zip": payload}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ZipServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.realdata
def test_download_on_first_use(zip_server, tmp_path, monkeypatch):
    small1_sha256 = "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"
    monkeypatch.setitem(omniglot.OMNIGLOT_SHA256, "images_background", small1_sha256)
    monkeypatch.setenv("UMETA_OMNIGLOT_URL", zip_server)
    (tmp_path / "none").mkdir()  # a folder without Omniglot in it
    data = load_omniglot("background", split="background-evaluation", data_dir=tmp_path / "none",
                         cache_dir=tmp_path / "cache", progress=False)
    assert data.num_classes == 136
    assert (tmp_path / "cache" / "omniglot" / "images_background.zip").is_file()
    # the official checksum does not match this archive: the error says so, nothing is kept
    monkeypatch.undo()
    with pytest.raises(UmetaError, match="checksum mismatch") as info:
        load_omniglot("background", split="background-evaluation", data_dir=tmp_path / "none",
                      cache_dir=tmp_path / "other", base_url=zip_server, progress=False)
    assert "\n" not in str(info.value) and "--data-dir" in str(info.value)
    assert list((tmp_path / "other" / "omniglot").iterdir()) == []
    with pytest.raises(UmetaError, match="HTTP 404"):
        load_omniglot("evaluation", split="background-evaluation", data_dir=tmp_path / "none",
                      cache_dir=tmp_path / "other", base_url=zip_server, progress=False)


def test_processed_copy_alone_is_enough(shared_data, tmp_path, monkeypatch):
    """A machine with only the processed cache (no zips, no npz, no network) still loads."""
    cache = tmp_path / "cache"
    first = load_omniglot("test", data_dir=shared_data / "omniglot", cache_dir=cache)
    monkeypatch.delenv("UMETA_DATA", raising=False)
    (tmp_path / "nothing").mkdir()  # a folder without Omniglot in it
    again = load_omniglot("test", data_dir=tmp_path / "nothing", cache_dir=cache, download=False)
    assert torch.equal(first.images, again.images) and first.class_names == again.class_names


def test_a_data_dir_that_does_not_exist_is_an_error_even_with_a_cache(shared_data, tmp_path,
                                                                      monkeypatch):
    cache = tmp_path / "cache"
    load_omniglot("test", data_dir=shared_data / "omniglot", cache_dir=cache)  # cached now
    with pytest.raises(UmetaError, match=r"--data-dir \(data_dir\) '.*typo' is not a folder"):
        load_omniglot("test", data_dir=tmp_path / "typo", cache_dir=cache, download=False)
    monkeypatch.setenv("UMETA_DATA", str(tmp_path / "typo"))
    with pytest.raises(UmetaError, match=r"\$UMETA_DATA '.*typo' is not a folder"):
        load_omniglot("test", cache_dir=cache, download=False)
