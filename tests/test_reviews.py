"""Reviewed negatives: the review file, what decisions settle per photo, proposals by a real model,
contact sheets, and `streetorder data review` end to end on real traffic-camera frames."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import cv2
import pytest
import yaml
from configured import MODELS, TAXONOMY

from serve.cli.data_review import cli as review_cli
from vision.core.sheets import SheetItem, write_contact_sheets
from vision.data.reviews import (
    Photo,
    Proposal,
    ReviewError,
    decide,
    photo_counts,
    propose,
    read_reviews,
    resolve,
    write_reviews,
)
from vision.detect.backends import load_detector
from vision.detect.registry import CURRENT

ROOT = Path(__file__).resolve().parents[1]
TRAFFIC = ROOT.parent / "shared" / "datasets" / "traffic-cams"
# three night highway frames street-v10 boxed whole as garbage (datasets/reviews/), and a day one
FRAMES = ("10260070026111110.jpg", "10260070026111111.jpg", "10260070026111112.jpg", "A10.jpg")
SHA = "0" * 64
needs_shared = pytest.mark.skipif(
    not TRAFFIC.exists(), reason="../shared/datasets is not beside the checkout"
)


def proposal(id_: int, image: str, cls: str, decision: str | None, box: float = 10.0) -> Proposal:
    decided = {"reviewer": "tester", "date": "2026-12-04"} if decision else {}
    return Proposal(
        id=id_,
        source="roads",
        split="train",
        image=image,
        sha256=SHA,
        width=100,
        height=80,
        cls=cls,
        xyxy=(box, box, box + 20, box + 20),
        confidence=0.4,
        model="m@1",
        proposed="2026-12-04",
        decision=decision,
        **decided,
    )


def test_decisions_settle_a_class_per_photo_only_when_every_box_of_it_is_decided_and_none_unsure() -> None:
    settled = resolve(
        [
            proposal(1, "a.jpg", "garbage", "false"),
            proposal(2, "a.jpg", "garbage", "false", box=40),  # all false: absent
            proposal(3, "a.jpg", "overflow", "real"),
            proposal(4, "a.jpg", "overflow", "false", box=50),  # real + false: labelled by the real box
            proposal(5, "a.jpg", "flyer", "false"),
            proposal(6, "a.jpg", "flyer", "unsure", box=40),  # unsure: stays masked
            proposal(7, "a.jpg", "poster", "false"),
            proposal(8, "a.jpg", "poster", None, box=40),  # undecided: stays masked
            proposal(9, "b.jpg", "garbage", "unsure"),  # nothing settled: photo left out
        ]
    )
    assert set(settled) == {"a.jpg"}
    review = settled["a.jpg"]
    assert review.absent == {"garbage"}
    assert review.boxes == (("overflow", (10.0, 10.0, 30.0, 30.0)),)
    assert review.labelled == {"garbage", "overflow"}
    assert photo_counts(settled.values()) == {
        "train": {
            "garbage": {"absent": 1, "pseudo_labelled": 0, "boxes": 0},
            "overflow": {"absent": 0, "pseudo_labelled": 1, "boxes": 1},
        }
    }


def test_a_review_file_round_trips_in_id_order(tmp_path: Path) -> None:
    path = tmp_path / "roads.jsonl"
    written = [proposal(2, "b.jpg", "garbage", "real"), proposal(1, "a.jpg", "flyer", None)]
    write_reviews(path, written)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [1, 2]
    assert read_reviews(path, TAXONOMY) == sorted(written, key=lambda p: p.id)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"xyxy": [10, 10, 120, 30]}, "not inside the 100x80 photo"),
        ({"xyxy": [30, 10, 20, 30]}, "not inside"),
        ({"xyxy": [1, 2, 3]}, "'xyxy' must be 4 numbers"),
        ({"class": "litter"}, "'class' 'litter' is not a taxonomy class"),  # aliases are not written
        ({"decision": "maybe"}, "'decision' must be one of false, real, unsure"),
        ({"decision": "false", "reviewer": None}, "a decision needs 'reviewer' and 'date'"),
        ({"sha256": "abc"}, "'sha256' must be 64"),
        ({"split": "test"}, "'split' must be train or val"),
        ({"width": "100"}, "'width' must be int"),
        ({"proposed": "yesterday"}, "'proposed' must be a date"),
    ],
)
def test_a_broken_line_is_refused_with_its_file_and_line(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "roads.jsonl"
    good = proposal(1, "a.jpg", "garbage", None).to_json()
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": 2, **change}) + "\n")
    with pytest.raises(ReviewError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        read_reviews(path, TAXONOMY)


def test_ids_used_twice_and_text_that_is_not_json_or_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "roads.jsonl"
    line = json.dumps(proposal(1, "a.jpg", "garbage", None).to_json())
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(ReviewError, match="ids used twice: \\[1\\]"):
        read_reviews(path, TAXONOMY)
    path.write_text(f"{line}\n{{not json\n")
    with pytest.raises(ReviewError, match=f"{re.escape(str(path))}:2: not JSON"):
        read_reviews(path, TAXONOMY)
    path.write_bytes(line.encode() + b"\n\xff\xfe\n")
    with pytest.raises(ReviewError, match=f"{re.escape(str(path))}: not UTF-8 text"):
        read_reviews(path, TAXONOMY)


def test_decide_changes_an_earlier_decision_only_when_asked() -> None:
    proposals = [proposal(1, "a.jpg", "garbage", "false"), proposal(2, "a.jpg", "garbage", None)]
    decided = decide(proposals, {2: "real"}, "second", date(2026, 12, 5))
    assert (
        decided[1].decision == "real" and decided[1].reviewer == "second" and decided[1].date == "2026-12-05"
    )
    assert decided[0] == proposals[0]
    with pytest.raises(ReviewError, match="#1 was decided 'false'"):
        decide(proposals, {1: "unsure"}, "second", date(2026, 12, 5))
    assert decide(proposals, {1: "unsure"}, "second", date(2026, 12, 5), change=True)[0].decision == "unsure"
    with pytest.raises(ReviewError, match="no proposal with id 7"):
        decide(proposals, {7: "false"}, "second", date(2026, 12, 5))


@needs_shared
def test_the_current_model_proposes_boxes_of_a_class_once() -> None:
    detector = load_detector(CURRENT, confidence=0.25, models_dir=MODELS, taxonomy=TAXONOMY)
    photos = [Photo("val", TRAFFIC / "images" / "val" / name) for name in FRAMES]
    car = TAXONOMY.names.index("car")  # on every traffic frame, whichever model is current
    first = list(propose(detector, "traffic-cams", photos, [car], [], date(2026, 12, 4)))
    with_cars = {p.path.name for p in photos if (detector(cv2.imread(str(p.path))).class_id == car).any()}
    assert first and {p.image for p in first} == with_cars
    assert [p.id for p in first] == list(range(1, len(first) + 1))
    for p in first:
        assert p.cls == "car" and p.confidence >= 0.25 and p.model == detector.version and p.decision is None
        assert (p.width, p.height) == (640, 360) and 0 <= p.xyxy[0] < p.xyxy[2] <= 640
    assert not list(propose(detector, "traffic-cams", photos, [car], first, date(2026, 12, 5)))
    dropped = [p for p in first if p.image != first[0].image]
    again = list(propose(detector, "traffic-cams", photos, [car], dropped, date(2026, 12, 5)))
    assert {p.image for p in again} == {first[0].image}  # only what the file lacks
    assert min(p.id for p in again) == max((p.id for p in dropped), default=0) + 1


@needs_shared
def test_a_photo_without_a_box_of_a_class_is_asked_about_whole_and_a_false_makes_it_a_negative() -> None:
    detector = load_detector(CURRENT, confidence=0.25, models_dir=MODELS, taxonomy=TAXONOMY)
    photos = [Photo("train", TRAFFIC / "images" / "val" / name) for name in FRAMES]
    classes = [TAXONOMY.names.index(name) for name in ("car", "garbage")]
    found = list(propose(detector, "traffic-cams", photos, classes, [], date(2026, 12, 5), whole_photos=True))
    for photo in photos:
        for name in ("car", "garbage"):
            mine = [p for p in found if p.image == photo.path.name and p.cls == name]
            boxed = [p for p in mine if not p.whole_photo]
            # either the model's boxes, or one question about the whole photo; never both
            assert boxed == mine or (len(mine) == 1 and mine[0].xyxy == (0, 0, 640, 360)), (photo, name)
    whole = [p for p in found if p.whole_photo]
    assert whole and all(p.confidence == 0 and p.model == detector.version for p in whole)
    assert any(p.cls == "car" and not p.whole_photo for p in found)  # cars on every traffic frame
    assert not list(
        propose(detector, "traffic-cams", photos, classes, found, date(2026, 12, 6), whole_photos=True)
    )
    settled = resolve(decide(found, {p.id: "false" for p in whole}, "tester", date(2026, 12, 5)))
    for p in whole:
        assert p.cls in settled[p.image].absent
    for p in found:  # boxes left undecided keep their class masked on their photo
        if not p.whole_photo and p.image in settled:
            assert p.cls not in settled[p.image].absent


@needs_shared
def test_contact_sheets_group_boxes_by_class_and_list_each_in_the_index(tmp_path: Path) -> None:
    frames = [TRAFFIC / "images" / "val" / name for name in FRAMES]
    items = [
        SheetItem(
            str(n), "garbage" if n % 2 else "flyer", frames[n % 3], (10.0 * n, 20.0, 10.0 * n + 8, 40.0), "c"
        )
        for n in range(1, 16)
    ]
    items.append(
        SheetItem("99", "garbage", tmp_path / "gone.jpg", (0.0, 0.0, 5.0, 5.0), "a photo gone since")
    )
    index, pages = write_contact_sheets(items, tmp_path / "out", "test sheets")
    assert [p.path.name for p in pages] == ["garbage-01.png", "flyer-01.png"]
    assert sum(len(p.labels) for p in pages) == 15 and "99" not in pages[0].labels
    page = cv2.imread(str(pages[0].path))
    assert page is not None and page.shape[1] > 1000  # three cells a row
    html = index.read_text()
    assert html.count("<img ") == 2 and "#15" in html and FRAMES[0] in html


@needs_shared
def test_propose_sheets_apply_and_counts_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cams"
    (source / "images" / "val").mkdir(parents=True)
    for name in FRAMES:
        shutil.copy(TRAFFIC / "images" / "val" / name, source / "images" / "val" / name)
    (source / "data.yaml").write_text(  # a source that labels trucks only: cars are proposed
        yaml.safe_dump({"train": "images/train", "val": "images/val", "names": ["truck"]})
    )
    reviews = tmp_path / "cams.jsonl"
    common = ["--data", str(source / "data.yaml"), "--reviews", str(reviews)]
    assert review_cli(["propose", *common, "--model", CURRENT, "--classes", "truck"]) == 1  # all labelled
    assert "nothing to propose" in capsys.readouterr().err and not reviews.exists()
    assert review_cli(["propose", *common, "--model", CURRENT, "--classes", "car,truck"]) == 0
    proposals = read_reviews(reviews, TAXONOMY)
    assert proposals and {p.cls for p in proposals} == {"car"}  # trucks are labelled by the source
    photos = len({p.image for p in proposals})
    assert review_cli(["sheets", *common, "--out", str(tmp_path / "sheets")]) == 0
    assert (tmp_path / "sheets" / "sheets" / "car-01.png").exists()
    assert not (tmp_path / "sheets" / "sheets" / "whole-photo-01.png").exists()
    last = proposals[-1].id
    capsys.readouterr()
    assert (
        review_cli(["apply", *common, "--reviewer", "tester", "--date", "2026-12-05", "--false", f"1-{last}"])
        == 0
    )
    counts = json.loads(capsys.readouterr().out)
    assert counts["photos"]["val"]["car"] == {"absent": photos, "pseudo_labelled": 0, "boxes": 0}
    assert counts["decisions"]["val"]["car"]["false"] == len(proposals)
    refused = review_cli(["apply", *common, "--reviewer", "tester", "--real", "1"])  # already false
    assert refused == 1 and "--change" in capsys.readouterr().err
    assert review_cli(["apply", *common, "--reviewer", "tester", "--false", "1", "--unsure", "1"]) == 1
    assert review_cli(["apply", *common, "--reviewer", "tester", "--false", "5-2"]) == 1
    assert read_reviews(reviews, TAXONOMY) == [
        replace(p, decision="false", reviewer="tester", date="2026-12-05") for p in proposals
    ]  # refused commands wrote nothing
    capsys.readouterr()
    assert review_cli(["propose", *common, "--model", CURRENT, "--classes", "car,bus", "--whole-photos"]) == 0
    asked = [p for p in read_reviews(reviews, TAXONOMY) if p.whole_photo]
    assert {p.cls for p in asked} >= {"bus"} and all(p.decision is None for p in asked)
    assert review_cli(["sheets", *common, "--pending", "--out", str(tmp_path / "whole")]) == 0
    index = (tmp_path / "whole" / "index.html").read_text()
    for image in {p.image for p in asked}:  # one cell a photo, labelled with all its questions' ids
        ids = ",".join(str(p.id) for p in asked if p.image == image)
        assert f"#{ids}" in index and image in index
    assert (tmp_path / "whole" / "sheets" / "whole-photo-01.png").exists()


@needs_shared
def test_the_committed_reviews_apply_to_the_shared_photos_they_were_made_on(tmp_path: Path) -> None:
    """Every decision on a shared set in datasets/reviews/ still names the photo (sha256) it was
    made on. flyers-v1's file is of a synthetic set each machine makes in its cache: a set made
    again with other fonts has other hashes, and its decisions then count as stale (masked)."""
    from vision.data.datamix import build_mix

    sources = []
    for reviews in sorted((ROOT / "datasets" / "reviews").glob("*.jsonl")):
        data = ROOT.parent / "shared" / "datasets" / reviews.stem / "data.yaml"
        if reviews.stem != "flyers-v1":
            sources.append({"name": reviews.stem, "data": str(data), "reviews": str(reviews)})
    shared = {"vehicles-in", "traffic-cams", "facades-spb", "bicycles", "garbage-cn"}
    assert {s["name"] for s in sources} == shared
    mix = tmp_path / "reviewed.yaml"
    mix.write_text(yaml.safe_dump({"name": "reviewed", "sources": sources}))
    built = json.loads(
        (build_mix(mix, tmp_path / "mix", taxonomy=TAXONOMY).parent / "sources.json").read_text()
    )
    for source in sources:
        info = built[source["name"]]
        settled = resolve(read_reviews(Path(source["reviews"]), TAXONOMY)).values()
        assert info["reviews_stale"] == 0, source["name"]
        assert info["reviewed"] == photo_counts(settled), source["name"]
