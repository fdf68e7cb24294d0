import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from umeta.data.user import UserData, load_user_data
from umeta.errors import UmetaError


def _gray(seed: int, size=(6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


# --------------------------------------------------------------------------- image folders


def test_class_folders_give_labels_and_exact_pixels(tmp_path):
    arrays = {("b", "0.png"): _gray(0), ("b", "1.png"): _gray(1), ("a", "x.png"): _gray(2)}
    for (cls, name), arr in arrays.items():
        _save(tmp_path / cls / name, arr)
    (tmp_path / "a" / "notes.txt").write_text("not an image")  # ignored
    (tmp_path / ".cache").mkdir()
    _save(tmp_path / ".cache" / "thumb.png", _gray(9))  # hidden folders are skipped
    data = load_user_data(tmp_path)
    assert data.kind == "images" and data.x.dtype == torch.float32
    assert data.x.shape == (3, 1, 6, 5)
    assert data.ids == ["a/x.png", "b/0.png", "b/1.png"]
    assert data.class_names == ["a", "b"] and data.y.tolist() == [0, 1, 1]
    expected = np.stack([arrays["a", "x.png"], arrays["b", "0.png"], arrays["b", "1.png"]]) / 255
    np.testing.assert_allclose(data.x[:, 0].numpy(), expected, atol=1e-6)
    assert data.source == str(tmp_path)


def test_flat_folder_is_unlabeled_and_nested_folders_name_classes(tmp_path):
    for i in range(3):
        _save(tmp_path / "flat" / f"{i}.png", _gray(i))
    data = load_user_data(tmp_path / "flat")
    assert data.y is None and data.class_names is None and len(data) == 3
    _save(tmp_path / "nested" / "Alpha" / "character01" / "1.png", _gray(0))
    _save(tmp_path / "nested" / "Alpha" / "character02" / "1.png", _gray(1))
    nested = load_user_data(tmp_path / "nested")
    assert nested.class_names == ["Alpha/character01", "Alpha/character02"]


def test_colour_rule_gray_content_stays_one_channel_colour_makes_all_rgb(tmp_path):
    gray = _gray(0)
    _save(tmp_path / "g" / "0.png", np.stack([gray] * 3, axis=2))  # RGB file, gray content
    _save(tmp_path / "g" / "1.png", _gray(1))
    assert load_user_data(tmp_path / "g").x.shape == (2, 1, 6, 5)
    colour = np.random.default_rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    _save(tmp_path / "c" / "0.png", colour)
    _save(tmp_path / "c" / "1.png", gray)
    data = load_user_data(tmp_path / "c")
    assert data.x.shape == (2, 3, 6, 5)
    np.testing.assert_allclose(data.x[0].permute(1, 2, 0).numpy(), colour / 255, atol=1e-6)
    for c in range(3):  # the gray image is copied into every channel
        np.testing.assert_allclose(data.x[1, c].numpy(), gray / 255, atol=1e-6)


def test_sixteen_bit_and_jpeg_images(tmp_path):
    deep = (np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000)
    _save(tmp_path / "d" / "0.png", deep)
    _save(tmp_path / "d" / "1.png", deep[::-1].copy())
    data = load_user_data(tmp_path / "d")
    np.testing.assert_allclose(data.x[0, 0].numpy(), deep / 65535, atol=1e-6)
    smooth = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))
    _save(tmp_path / "j" / "0.jpg", smooth)
    _save(tmp_path / "j" / "1.jpeg", smooth)
    jpeg = load_user_data(tmp_path / "j")
    assert jpeg.x.shape == (2, 1, 16, 16)
    assert np.abs(jpeg.x[0, 0].numpy() - smooth / 255).max() < 0.05


def test_mixed_sizes_name_both_files_unless_resized(tmp_path):
    _save(tmp_path / "0.png", _gray(0, (6, 5)))
    _save(tmp_path / "1.png", _gray(1, (8, 7)))
    with pytest.raises(UmetaError, match=r"0\.png.* 5x6 .*1\.png.* 7x8 .*image_size"):
        load_user_data(tmp_path)
    data = load_user_data(tmp_path, image_size=(4, 3))
    assert data.x.shape == (2, 1, 4, 3)
    constant = np.full((8, 8), 200, dtype=np.uint8)
    _save(tmp_path / "k" / "0.png", constant)
    _save(tmp_path / "k" / "1.png", constant[:6])
    resized = load_user_data(tmp_path / "k", image_size=4)
    # resizing keeps a flat image flat
    np.testing.assert_allclose(resized.x.numpy(), 200 / 255, atol=1e-6)


@pytest.mark.parametrize("image_size", [0, (3,), "big", (4, -1)])
def test_bad_image_size(tmp_path, image_size):
    _save(tmp_path / "0.png", _gray(0))
    _save(tmp_path / "1.png", _gray(1))
    with pytest.raises(UmetaError, match="image_size"):
        load_user_data(tmp_path, image_size=image_size)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UmetaError, match="no images found"):
        load_user_data(tmp_path / "empty")
    _save(tmp_path / "one" / "0.png", _gray(0))
    with pytest.raises(UmetaError, match="single sample"):
        load_user_data(tmp_path / "one")
    _save(tmp_path / "mixed" / "loose.png", _gray(0))
    _save(tmp_path / "mixed" / "cls" / "0.png", _gray(1))
    with pytest.raises(UmetaError, match=r"loose\.png.*cls/0\.png"):
        load_user_data(tmp_path / "mixed")
    _save(tmp_path / "broken" / "0.png", _gray(0))
    (tmp_path / "broken" / "1.png").write_bytes(b"this is not a png")
    with pytest.raises(UmetaError, match=r"cannot read image .*1\.png"):
        load_user_data(tmp_path / "broken")


def test_as_imageset_round_trips_uint8(tmp_path):
    arrays = [_gray(i) for i in range(4)]
    for i, arr in enumerate(arrays):
        _save(tmp_path / f"c{i % 2}" / f"{i}.png", arr)
    s = load_user_data(tmp_path).as_imageset()
    assert s.images.dtype == torch.uint8 and s.class_names == ["c0", "c1"]
    assert s.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(s.images[0, 0], torch.from_numpy(arrays[0]))
    assert torch.equal(s.images[2, 0], torch.from_numpy(arrays[1]))
    flat = UserData(torch.rand(3, 1, 4, 4), None, None, ["a", "b", "c"], "images", "mem")
    assert flat.as_imageset().labels.tolist() == [-1, -1, -1]
    vectors = UserData(torch.rand(3, 4), None, None, ["a", "b", "c"], "vectors", "mem")
    with pytest.raises(UmetaError, match="vectors"):
        vectors.as_imageset()


# --------------------------------------------------------------------------- npz


def test_npz_vectors_with_string_labels(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(tmp_path / "d.npz", X=x, y=np.array(["dog", "cat", "dog", "cow"]))
    data = load_user_data(tmp_path / "d.npz")
    assert data.kind == "vectors" and data.x.dtype == torch.float32
    np.testing.assert_array_equal(data.x.numpy(), x)
    assert data.class_names == ["cat", "cow", "dog"] and data.y.tolist() == [2, 0, 2, 1]
    assert data.ids[1] == "row 1"


def test_npz_image_layouts_and_scaling(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, (3, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "hw.npz", X=raw)
    data = load_user_data(tmp_path / "hw.npz")
    assert data.kind == "images" and data.y is None and data.x.shape == (3, 1, 6, 5)
    np.testing.assert_allclose(data.x[:, 0].numpy(), raw / 255, atol=1e-6)
    rgb = np.random.default_rng(1).integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "hwc.npz", X=rgb)
    np.testing.assert_allclose(load_user_data(tmp_path / "hwc.npz").x.numpy(),
                               rgb.transpose(0, 3, 1, 2) / 255, atol=1e-6)
    np.savez(tmp_path / "chw.npz", X=rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    assert load_user_data(tmp_path / "chw.npz").x.shape == (3, 3, 6, 5)
    assert load_user_data(tmp_path / "chw.npz", image_size=4).x.shape == (3, 3, 4, 4)
    np.savez(tmp_path / "bool.npz", X=raw > 127, y=[1, 2, 1])
    b = load_user_data(tmp_path / "bool.npz")
    assert set(b.x.unique().tolist()) <= {0.0, 1.0} and b.class_names == ["1", "2"]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", data=np.zeros((3, 2)))
    with pytest.raises(UmetaError, match=r"^'.*nox\.npz' has no array 'X' \(it has \['data'\]\)"):
        load_user_data(tmp_path / "nox.npz")
    np.savez(tmp_path / "ylen.npz", X=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(UmetaError, match=r"3 samples .*\(4,\)"):
        load_user_data(tmp_path / "ylen.npz")
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=x)
    with pytest.raises(UmetaError, match="row 2, column 1"):
        load_user_data(tmp_path / "nan.npz")
    x[2, 1], x[3, 0] = 0, np.inf
    np.savez(tmp_path / "inf.npz", X=x)
    with pytest.raises(UmetaError, match=r"\(inf\) at row 3, column 0"):
        load_user_data(tmp_path / "inf.npz")
    np.savez(tmp_path / "one.npz", X=np.zeros((1, 3)))
    with pytest.raises(UmetaError, match="single sample"):
        load_user_data(tmp_path / "one.npz")
    np.savez(tmp_path / "empty.npz", X=np.zeros((0, 3)))
    with pytest.raises(UmetaError, match="no samples"):
        load_user_data(tmp_path / "empty.npz")
    np.savez(tmp_path / "range.npz", X=np.full((2, 4, 4), 3.0))
    with pytest.raises(UmetaError, match=r"outside \[0, 1\]"):
        load_user_data(tmp_path / "range.npz")
    np.savez(tmp_path / "vec.npz", X=np.zeros((2, 4)))
    with pytest.raises(UmetaError, match="image_size applies to images"):
        load_user_data(tmp_path / "vec.npz", image_size=8)
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UmetaError, match=r"cannot read .*obj\.npz.*plain numeric arrays"):
        load_user_data(tmp_path / "obj.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(UmetaError, match=r"cannot read .*bad\.npz"):
        load_user_data(tmp_path / "bad.npz")
    with pytest.raises(UmetaError, match="CSV/TSV tables only"):
        load_user_data(tmp_path / "vec.npz", label_column="y")


# --------------------------------------------------------------------------- tables


def test_csv_with_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,kind,b\n1,x,2.5\n\n3,y,-4\n5,x,6e1\n")
    data = load_user_data(tmp_path / "t.csv", label_column="kind")
    assert data.kind == "vectors"
    np.testing.assert_array_equal(data.x.numpy(), [[1, 2.5], [3, -4], [5, 60]])
    assert data.class_names == ["x", "y"] and data.y.tolist() == [0, 1, 0]


def test_tables_are_read_by_the_one_table_reader(tmp_path):
    """CSV/TSV go through `read_user_table`: text columns are categories, missing values NaN,
    a feature named like labels is warned about."""
    from umeta.data.table_input import LabelLikeColumnWarning

    (tmp_path / "t.csv").write_text("a,colour,target\n1,red,0\n,blue,1\n3,red,1\n")
    with pytest.warns(LabelLikeColumnWarning, match="column 'target' looks like labels"):
        data = load_user_data(tmp_path / "t.csv")
    x = data.x.numpy()
    assert data.kind == "vectors" and x.shape == (3, 3) and data.y is None
    assert np.isnan(x[1, 0]) and x[0, 1] == x[2, 1] != x[1, 1]  # colour codes
    data = load_user_data(tmp_path / "t.csv", label_column="target")
    assert data.x.shape == (3, 2) and data.y.tolist() == [0, 1, 1]


def test_tsv_gz_without_labels(tmp_path):
    with gzip.open(tmp_path / "t.tsv.gz", "wt") as f:
        f.write("f1\tf2\n0.5\t1\n2\t3\n")
    data = load_user_data(tmp_path / "t.tsv.gz")
    assert data.y is None
    np.testing.assert_array_equal(data.x.numpy(), [[0.5, 1], [2, 3]])


def test_csv_errors(tmp_path):
    (tmp_path / "text.csv").write_text("a,colour\n1,red\n2,blue\n")
    with pytest.raises(UmetaError, match=r"'label' is not a column .* \['a', 'colour'\]"):
        load_user_data(tmp_path / "text.csv", label_column="label")
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n")
    with pytest.raises(UmetaError, match=r"column 'b' data row 2 is inf"):
        load_user_data(tmp_path / "inf.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UmetaError, match="is empty"):
        load_user_data(tmp_path / "empty.csv")
    (tmp_path / "one.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UmetaError, match="only one data row"):
        load_user_data(tmp_path / "one.csv")
    with pytest.raises(UmetaError, match="image_size applies to images"):
        load_user_data(tmp_path / "inf.csv", image_size=8)


def test_path_errors(tmp_path):
    with pytest.raises(UmetaError, match=r"does not exist"):
        load_user_data(tmp_path / "missing.csv")
    (tmp_path / "data.dat").write_text("1 2 3")
    with pytest.raises(UmetaError, match=r"data\.dat.*unknown file type"):
        load_user_data(tmp_path / "data.dat")
    _save(tmp_path / "single.png", _gray(0))
    with pytest.raises(UmetaError, match="unknown file type"):
        load_user_data(tmp_path / "single.png")


def test_every_error_is_one_line(tmp_path):
    (tmp_path / "inf.csv").write_text("a,b\n1,2\n3,inf\n")
    for call in (lambda: load_user_data(tmp_path / "nope"),
                 lambda: load_user_data(tmp_path / "inf.csv")):
        with pytest.raises(UmetaError) as info:
            call()
        assert "\n" not in str(info.value)
