"""Synthetic flyers: reproducible, labels exactly where flyers were pasted, never on labelled objects."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from configured import CONFIGS, TAXONOMY

from serve.cli.data import cli as data_cli
from vision.core.taxonomy import load_taxonomy
from vision.data.datamix import build_mix
from vision.data.flyers.compositing import example_rng, render_example
from vision.data.flyers.fonts import FontError, find_cjk_fonts
from vision.data.flyers.scene import Scene, scene_from_labels
from vision.data.flyers.synthesize import Background, labelled_classes, synthesize
from vision.data.flyers.text import flyer_text

FACADES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "facades-spb"


def wall_photo(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A plastered wall with a drainpipe, a door and a strip of pavement (BGR)."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.empty((height, width, 3), np.uint8)
    image[:] = (140 + 10 * (seed % 3), 165, 190)
    noise = rng.normal(0, 6, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    cv2.rectangle(image, (int(width * 0.3), 10), (int(width * 0.3) + 5, height - 30), (70, 70, 75), -1)
    cv2.rectangle(
        image, (int(width * 0.62), int(height * 0.3)), (int(width * 0.8), height - 25), (40, 45, 110), -1
    )
    cv2.rectangle(image, (0, height - 25), (width, height), (120, 120, 120), -1)
    return image


def write_dataset(root: Path, names: list[str], images: dict[str, tuple[np.ndarray, list[str]]]) -> Path:
    """A tiny ultralytics dataset: data.yaml, images/train, labels/train."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for stem, (image, rows) in images.items():
        cv2.imwrite(str(root / "images" / "train" / f"{stem}.jpg"), image)
        (root / "labels" / "train" / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
    (root / "data.yaml").write_text(
        yaml.safe_dump({"train": "images/train", "names": dict(enumerate(names))})
    )
    return root / "images" / "train"


@pytest.fixture(scope="module")
def fonts() -> tuple[str, ...]:
    return find_cjk_fonts()


@pytest.fixture
def backgrounds(tmp_path: Path) -> Path:
    # a door (a surface: flyers may go on it) and a bin (an object: never covered)
    rows = ["0 0.71 0.66 0.18 0.59", "1 0.12 0.78 0.16 0.30"]
    return write_dataset(
        tmp_path / "walls", ["door", "garbage_bin"], {f"wall{i}": (wall_photo(i), rows) for i in range(3)}
    )


def scene(seed: int) -> Scene:
    image = wall_photo(seed)
    rows = np.array([[0, 0.71, 0.66, 0.18, 0.59], [1, 0.12, 0.78, 0.16, 0.30]])
    return scene_from_labels(image, rows, ["door", "garbage_bin"])


def test_missing_font_fails_naming_the_install() -> None:
    with pytest.raises(FontError, match="apt-get install"):
        find_cjk_fonts(
            ("/nonexistent/font.ttc", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), fontconfig=False
        )


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, backgrounds: Path) -> None:
    runs = [
        synthesize([backgrounds], tmp_path / name, count=4, seed=seed, progress=False, taxonomy=TAXONOMY)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    ]
    assert runs[0].flyers > 0

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.suffix in (".jpg", ".txt")
        }

    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert files(tmp_path / "a") != files(tmp_path / "c")


@pytest.mark.parametrize("seed", range(6))
def test_changed_pixels_lie_exactly_in_the_flyer_boxes(seed: int, fonts: tuple[str, ...]) -> None:
    with_flyers = render_example(scene(seed), example_rng(seed, 0), fonts, empty_share=0.0)
    without = render_example(scene(seed), example_rng(seed, 0), fonts, paste_flyers=False, empty_share=0.0)
    changed = (with_flyers.image != without.image).any(axis=2)
    labelled = np.zeros_like(changed)
    for x1, y1, x2, y2 in (p.xyxy for p in with_flyers.flyers):
        labelled[y1:y2, x1:x2] = True
        assert changed[y1:y2, x1:x2].any(), "a label box without a pasted flyer"
        assert changed[y1:y2, x1].any() and changed[y1:y2, x2 - 1].any(), "box wider than the flyer"
        assert changed[y1, x1:x2].any() and changed[y2 - 1, x1:x2].any(), "box taller than the flyer"
    assert not (changed & ~labelled).any(), "pixels changed outside every label box"


@pytest.mark.parametrize("seed", range(3))
def test_upscaled_the_same_flyers_come_at_more_pixels(seed: int, fonts: tuple[str, ...]) -> None:
    small = render_example(scene(seed), example_rng(seed, 0), fonts, empty_share=0.0)
    large = render_example(scene(seed), example_rng(seed, 0), fonts, empty_share=0.0, upscale=3)
    assert large.image.shape[:2] == tuple(3 * v for v in small.image.shape[:2])
    assert [(p.style, p.text) for p in large.flyers] == [(p.style, p.text) for p in small.flyers]
    assert small.flyers, "the scene takes flyers"
    for little, big in zip(small.flyers, large.flyers, strict=True):
        # the visible bounds, 3x, within the blur's reach (a few pixels of the small photo)
        assert np.abs(np.array(big.xyxy) - 3 * np.array(little.xyxy)).max() <= 3 * 4


def test_an_upscaled_set_labels_the_same_flyers(tmp_path: Path, backgrounds: Path) -> None:
    """`synth-flyers --upscale 2`: the same photos and flyers at twice the pixels, so the YOLO rows
    (normalised) agree with the set made without it; synth.json says how it was made."""
    for name, upscale in (("x1", 1), ("x2", 2)):
        synthesize([backgrounds], tmp_path / name, 2, TAXONOMY, seed=5, progress=False, upscale=upscale)
    assert json.loads((tmp_path / "x2" / "synth.json").read_text())["upscale"] == 2
    for label in sorted((tmp_path / "x1" / "labels").rglob("*.txt")):
        small = np.loadtxt(label, ndmin=2)
        large = np.loadtxt(tmp_path / "x2" / label.relative_to(tmp_path / "x1"), ndmin=2)
        assert small.shape == large.shape and np.abs(small - large).max() < 0.02
        image = label.parent.parent.parent / "images" / label.parent.name / f"{label.stem}.jpg"
        twice = tmp_path / "x2" / image.relative_to(tmp_path / "x1")
        assert cv2.imread(str(twice)).shape[:2] == tuple(2 * v for v in cv2.imread(str(image)).shape[:2])


@pytest.mark.parametrize("seed", range(8))
def test_flyers_never_cover_labelled_objects(seed: int, fonts: tuple[str, ...]) -> None:
    walls = scene(seed)
    example = render_example(walls, example_rng(seed, 1), fonts, empty_share=0.0)
    for fx1, fy1, fx2, fy2 in (p.xyxy for p in example.flyers):
        for ox1, oy1, ox2, oy2 in walls.protected:
            assert fx2 <= ox1 or fx1 >= ox2 or fy2 <= oy1 or fy1 >= oy2


def test_scene_reads_scale_and_surfaces_from_labels() -> None:
    walls = scene(0)
    door_scale, bin_scale = 0.59 * 240 / 2.1, 0.30 * 240 / 1.0  # a door is ~2.1 m, a wheelie bin ~1 m
    assert walls.pixels_per_metre == pytest.approx((door_scale + bin_scale) / 2)
    assert len(walls.doors) == 1 and len(walls.protected) == 1  # the door is a surface, the bin an object
    assert walls.ground_y == pytest.approx((0.66 + 0.59 / 2) * 240)  # the door's foot is the wall's


@pytest.mark.parametrize(
    ("datasets", "expected"),
    [
        ({"a": ("door", "garbage_bin")}, ["flyer", "garbage_bin"]),
        ({"a": ("window", "signboard", "win_ad")}, ["flyer", "signboard", "poster"]),
        # a class only one background set labels would be unlabelled on the other's images
        ({"a": ("garbage", "garbage_bin"), "b": ("window", "signboard")}, ["flyer"]),
        ({"a": ("garbage", "bin"), "b": ("trash_can", "car")}, ["flyer", "garbage_bin"]),
        ({"": ()}, ["flyer"]),
    ],
)
def test_output_classes_are_those_every_background_set_labels(
    datasets: dict[str, tuple[str, ...]], expected: list[str]
) -> None:
    pool = [Background(Path(f"{d}.jpg"), names, d) for d, names in datasets.items()]
    assert labelled_classes(pool, load_taxonomy(CONFIGS / "taxonomy.yaml")) == expected


def test_flyer_text_is_typical_small_ad_content() -> None:
    texts = [flyer_text(np.random.default_rng(seed)) for seed in range(40)]
    assert all(len(t.phones) == 1 and t.number for t in texts)
    titles = "".join(t.title for t in texts)
    assert any(word in titles for word in ("开锁", "办证", "疏通", "搬家", "贷款", "招聘"))


def test_cli_writes_a_dataset_a_mix_can_use(tmp_path: Path, backgrounds: Path) -> None:
    out = tmp_path / "flyers"
    assert (
        data_cli(["synth-flyers", "--backgrounds", str(backgrounds), "--out", str(out), "--count", "3"]) == 0
    )
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "flyer", 1: "garbage_bin"}
    assert (out / "contact_sheet.png").stat().st_size > 0
    labels = [line.split() for p in (out / "labels").rglob("*.txt") for line in p.read_text().splitlines()]
    assert labels and all(len(row) == 5 and 0 <= float(v) <= 1 for row in labels for v in row[1:])
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        yaml.safe_dump({"name": "m", "sources": [{"name": "flyers", "data": str(out / "data.yaml")}]})
    )
    built = build_mix(mix, tmp_path / "built", taxonomy=TAXONOMY)
    names = load_taxonomy(CONFIGS / "taxonomy.yaml").names
    sources = yaml.safe_load((built.parent / "sources.json").read_text())
    assert sources["flyers"]["labelled"] == sorted([names.index("flyer"), names.index("garbage_bin")])
    assert (
        data_cli(["synth-flyers", "--backgrounds", str(backgrounds), "--out", str(out), "--count", "3"]) == 1
    )


def test_a_folder_that_is_not_a_flyer_set_is_never_overwritten(tmp_path: Path, backgrounds: Path) -> None:
    out = tmp_path / "precious"
    (out / "images").mkdir(parents=True)
    (out / "images" / "keep.jpg").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="not empty"):
        synthesize([backgrounds], out, count=1, overwrite=True, progress=False, taxonomy=TAXONOMY)
    assert (out / "images" / "keep.jpg").read_bytes() == b"mine"


def test_unknown_data_subcommand_is_refused() -> None:
    assert data_cli(["no-such-thing"]) == 2


@pytest.mark.skipif(not FACADES.exists(), reason="../shared/datasets is not beside the checkout")
def test_real_facade_gets_flyers_off_its_labelled_objects(fonts: tuple[str, ...]) -> None:
    image_path = FACADES / "images" / "train" / "img_1.jpg"
    image = cv2.imread(str(image_path))
    rows = np.loadtxt(FACADES / "labels" / "train" / "img_1.txt", ndmin=2)
    names = [str(n) for n in yaml.safe_load((FACADES / "data.yaml").read_text())["names"].values()]
    facade = scene_from_labels(image, rows, names)
    placed = [
        p
        for seed in range(4)
        for p in render_example(facade, example_rng(seed, 0), fonts, empty_share=0.0).flyers
    ]
    assert placed
    for fx1, fy1, fx2, fy2 in (p.xyxy for p in placed):
        assert all(
            fx2 <= ox1 or fx1 >= ox2 or fy2 <= oy1 or fy1 >= oy2 for ox1, oy1, ox2, oy2 in facade.protected
        )


def test_a_set_stopped_half_way_is_no_dataset_and_overwrite_replaces_it(
    tmp_path: Path, backgrounds: Path
) -> None:
    """A run stopped half-way (Ctrl-C, here an unreadable background) left images and labels but
    no synth.json: the next run answered 'holds no synthetic flyer set; choose an empty folder',
    even with --overwrite, and the folder had to be deleted by hand."""
    (backgrounds / "wall9.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    (backgrounds.parents[1] / "labels" / "train" / "wall9.txt").write_text("")
    out = tmp_path / "flyers"
    with pytest.raises(ValueError, match=r"wall9\.jpg: not a readable image"):
        synthesize([backgrounds], out, count=4, progress=False, taxonomy=TAXONOMY)
    assert not (out / "data.yaml").exists()  # a half set is not taken for a dataset
    with pytest.raises(FileExistsError, match=r"an unfinished .* pass --overwrite"):
        synthesize([backgrounds], out, count=1, progress=False, taxonomy=TAXONOMY)
    (backgrounds / "wall9.jpg").unlink()
    done = synthesize([backgrounds], out, count=2, overwrite=True, progress=False, taxonomy=TAXONOMY)
    assert done.images == 2 and (out / "data.yaml").exists()
    assert "unfinished" not in json.loads((out / "synth.json").read_text())
    assert len(list((out / "images").rglob("*.jpg"))) == 2
