"""Copy-paste (vision.data.paste): objects of one source pasted only into photos where reviews settle
their class, labelled where their pixels landed, clear of the host's own objects; the result is a
mix source that labels the pasted class alone."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from configured import TAXONOMY

from serve.cli.data_paste import cli as paste_cli
from vision.core.files import file_sha256
from vision.data.annotations.coords import from_yolo, to_yolo
from vision.data.datamix import build_mix
from vision.data.paste import paste_objects
from vision.data.reviews import Proposal, write_reviews

RED, BLUE, YELLOW = (0, 0, 255), (255, 0, 0), (0, 255, 255)
HOST_CAR = (20.0, 20.0, 120.0, 80.0)


def _photo(
    folder: Path,
    name: str,
    size: tuple[int, int],
    colour: tuple[int, int, int],
    boxes: list[tuple[int, tuple[float, float, float, float], tuple[int, int, int]]],
) -> Path:
    """A plain photo with filled boxes, and its YOLO label file beside it under labels/."""
    width, height = size
    image = np.full((height, width, 3), colour, np.uint8)
    lines = []
    for cls, xyxy, fill in boxes:
        cv2.rectangle(image, (int(xyxy[0]), int(xyxy[1])), (int(xyxy[2]) - 1, int(xyxy[3]) - 1), fill, -1)
        lines.append(f"{cls} {to_yolo(xyxy, width, height)}\n")
    path = folder / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    label = folder / "labels" / Path(name).with_suffix(".txt")
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("".join(lines), encoding="utf-8")
    return path


def _review(
    id_: int, photo: Path, split: str, decision: str, box: tuple[float, ...] | None = None
) -> Proposal:
    return Proposal(
        id=id_, source="roads", split=split, image=photo.name, sha256=file_sha256(photo),
        width=320, height=240,
        cls="garbage", xyxy=box or (0.0, 0.0, 320.0, 240.0), confidence=0.4 if box else 0.0, model="m@1",
        proposed="2026-12-06", decision=decision, reviewer="tester", date="2026-12-06",
    )  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A donor source of red piles (and blue bins) and a host source of cars with reviews; the mix."""
    dump = tmp_path / "dump"
    for n in range(3):  # one clean pile a photo, a bin well apart
        _photo(dump / "train", f"d{n}.jpg", (200, 200), (90, 90, 90),
               [(0, (40.0, 100.0, 100.0, 160.0), RED), (1, (150.0, 10.0, 190.0, 50.0), BLUE)])  # fmt: skip
    _photo(dump / "train", "touching.jpg", (200, 200), (90, 90, 90),
           [(0, (40.0, 40.0, 100.0, 100.0), RED), (1, (95.0, 40.0, 150.0, 100.0), BLUE)])  # fmt: skip
    _photo(dump / "train", "whole.jpg", (200, 200), (90, 90, 90), [(0, (0.0, 0.0, 200.0, 200.0), RED)])
    (dump / "data.yaml").write_text(
        "# Source: dump, CC0\ntrain: train/images\nnames: [garbage, garbage_bin]\n"
    )
    roads = tmp_path / "roads"
    car = [(0, HOST_CAR, YELLOW)]
    photos = {n: _photo(roads / "train", f"{n}.jpg", (320, 240), (60, 140, 60), car) for n in "abcd"}
    val = _photo(roads / "val", "v.jpg", (320, 240), (60, 140, 60), car)
    (roads / "data.yaml").write_text(
        "# Source: roads, CC BY 4.0\ntrain: train/images\nval: val/images\nnames: [car]\n"
    )
    real = (200.0, 150.0, 240.0, 190.0)
    write_reviews(tmp_path / "roads.jsonl", [
        _review(1, photos["a"], "train", "false"),         # garbage confirmed absent
        _review(2, photos["b"], "train", "unsure"),        # not settled: stays masked
        _review(3, photos["c"], "train", "real", real),    # labelled by a real box
        _review(4, val, "val", "false"),                   # val is the holdout: never pasted into
    ])  # fmt: skip
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        "name: tiny\nsources:\n  - {name: dump, data: dump/data.yaml}\n"
        "  - {name: roads, data: roads/data.yaml, reviews: roads.jsonl}\n"
    )
    return mix


def _labels(out: Path, image: str) -> list[np.ndarray]:
    text = (out / "labels" / "train" / Path(image).with_suffix(".txt")).read_text()
    return [np.asarray(from_yolo(*map(float, line.split()[1:]), 320, 240)) for line in text.splitlines()]


def test_objects_go_only_into_settled_train_photos_where_their_pixels_landed_clear_of_the_host_objects(
    world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pasted"
    summary = paste_objects(world, "dump", ["garbage"], out, TAXONOMY, per_photo=2, seed=3)
    assert (summary.donors, summary.hosts) == (3, 2)  # touching the bin / a whole scene: not cut out
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["roads__a.jpg", "roads__c.jpg"]
    records = [json.loads(line) for line in (out / "pasted.jsonl").read_text().splitlines()]
    assert {r["host"] for r in records} == {"roads/a.jpg", "roads/c.jpg"}
    assert summary.objects["garbage"] == sum(len(r["pasted"]) for r in records) >= 2
    for record in records:
        image = cv2.imread(str(out / record["image"]))
        boxes = _labels(out, Path(record["image"]).name)
        pasted = boxes[-len(record["pasted"]) :]
        for box in pasted:
            x1, y1, x2, y2 = box.round().astype(int)
            region = image[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].reshape(-1, 3).mean(axis=0)
            assert region[2] > 180 and region[1] < 80, f"box {box} is not on the red pile: {region}"
            overlap = max(0, min(box[2], HOST_CAR[2]) - max(box[0], HOST_CAR[0])) * max(
                0, min(box[3], HOST_CAR[3]) - max(box[1], HOST_CAR[1])
            )
            assert overlap <= 0.2 * (box[2] - box[0]) * (box[3] - box[1])
        car = image[25:75, 25:115].reshape(-1, 3).mean(axis=0)
        assert car[2] > 200 and car[1] > 200 and car[0] < 60, "the host's car was pasted over"
    kept = _labels(out, "roads__c.jpg")[0]
    assert np.allclose(kept, (200, 150, 240, 190), atol=1)  # the reviewer's real box stays a label
    assert "names:\n  0: garbage" in (out / "data.yaml").read_text()
    assert "val:" not in (out / "data.yaml").read_text()
    assert (out / "sheets" / "pasted-01.png").is_file()


def test_the_copies_are_a_mix_source_that_labels_the_pasted_class_alone(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "pasted"
    paste_objects(world, "dump", ["garbage"], out, TAXONOMY, seed=1)
    mix = tmp_path / "with-pasted.yaml"
    mix.write_text(world.read_text() + f"  - {{name: pasted, data: {out / 'data.yaml'}}}\n")
    build_mix(mix, tmp_path / "built", TAXONOMY)
    sources = json.loads((tmp_path / "built" / "sources.json").read_text())
    assert sources["pasted"]["labelled"] == [TAXONOMY.names.index("garbage")]
    assert sources["pasted"]["images"] == {"train": 2}
    assert "dump" in sources["pasted"]["licence"] and "roads" in sources["pasted"]["licence"]


def test_the_same_seed_makes_the_same_copies_and_a_changed_photo_is_no_host(
    world: Path, tmp_path: Path
) -> None:
    first, second, other = (tmp_path / n for n in ("one", "two", "three"))
    paste_objects(world, "dump", ["garbage"], first, TAXONOMY, seed=5)
    paste_objects(world, "dump", ["garbage"], second, TAXONOMY, seed=5)
    paste_objects(world, "dump", ["garbage"], other, TAXONOMY, seed=6)
    assert (first / "pasted.jsonl").read_text() == (second / "pasted.jsonl").read_text()
    assert (first / "pasted.jsonl").read_text() != (other / "pasted.jsonl").read_text()
    photo = tmp_path / "roads" / "train" / "images" / "a.jpg"
    image = cv2.imread(str(photo))
    cv2.imwrite(str(photo), 255 - image)  # another picture: the review of the old one no longer holds
    summary = paste_objects(world, "dump", ["garbage"], tmp_path / "four", TAXONOMY, seed=5)
    assert summary.hosts == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "dump", "--classes", "car"], "dump does not label car"),
        (["--from", "dump", "--classes", "rubbish_heap_xyz"], "not a class of the taxonomy"),
        (["--from", "parks", "--classes", "garbage"], "no source named 'parks'"),
        (["--from", "roads", "--classes", "car"], "nothing to paste"),  # no other source has reviews
    ],
)
def test_the_command_line_names_what_does_not_fit(
    world: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = paste_cli(["--mix", str(world), "--out", str(tmp_path / "out"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_writes_the_set_and_refuses_to_overwrite_unasked(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--mix", str(world), "--from", "dump", "--classes", "garbage", "--out", str(tmp_path / "out")]
    assert paste_cli(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["images"] == 2
    assert paste_cli(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert paste_cli([*args, "--overwrite", "--seed", "9"]) == 0
