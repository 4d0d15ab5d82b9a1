"""The Label Studio ML backend (/labelstudio) over HTTP with the real model, in the request shapes
Label Studio sends (label_studio/ml/api_connector.py: predict, setup, health, webhook, train).

Percent coordinates are checked against the model run directly on the same photo, a non-square
one, and the same photo stored sideways with an EXIF orientation (boxes are in the upright photo).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from configured import MODELS, TAXONOMY
from conftest import Service
from PIL import Image

from vision.core.boxes import boxes_of
from vision.core.imageio import decode_photo, exif_for
from vision.data.annotations.coords import to_percent
from vision.data.annotations.label_config import label_config
from vision.detect.registry import find_model

VAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn" / "images" / "val"
PROJECT = "3.1759300000"  # Label Studio sends `<project id>.<created_at timestamp>`


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: these endpoints store nothing in the case database but the audit log."""
    return f"sqlite:///{tmp_path / 'cases.db'}"


@pytest.fixture
def service_overrides(tmp_path: Path) -> dict[str, object]:
    return {
        "labelstudio_files_root": tmp_path / "files",
        "annotations_dir": tmp_path / "annotations",
        "retrain_after": 2,
    }


@pytest.fixture(scope="module")
def street_rgb() -> np.ndarray:
    """A real garbage photo cropped to 640x400 (RGB) on which the model finds boxes, garbage among them."""
    try:
        find_model("current", models_dir=MODELS)
    except Exception as err:
        pytest.skip(f"no current model ({err})")
    if not VAL_IMAGES.is_dir():
        pytest.skip(f"{VAL_IMAGES} not found (../shared beside the project)")
    from vision.detect.backends import load_detector

    detector = load_detector("current", models_dir=MODELS, taxonomy=TAXONOMY)
    for path in sorted(VAL_IMAGES.glob("*.jpg"))[:60]:
        bgr = cv2.imread(str(path))[100:500, :]  # 640 wide, 400 high
        boxes = expected_boxes(detector(bgr))
        if len(boxes) >= 2 and any(b.class_name == "garbage" for b in boxes):  # a `Trash` box for the tests
            return np.ascontiguousarray(bgr[:, :, ::-1])
    pytest.skip("the current model finds no photo with garbage and 2 boxes in the first 60 validation photos")


def expected_boxes(detections: Any) -> list[Any]:
    classes = {c.name: c for c in TAXONOMY.classes}
    return [
        b
        for b in boxes_of(detections, TAXONOMY.names)
        if b.confidence >= classes[b.class_name].min_confidence
    ]


def write_png(rgb: np.ndarray, path: Path, orientation: int = 1) -> Path:
    """A lossless photo; orientation 6 stores it turned left, to be shown turned right (upright)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    if orientation == 6:
        image = image.transpose(Image.Transpose.ROTATE_90)
    image.save(path, format="PNG", exif=exif_for(orientation=orientation))
    return path


def task(task_id: int, image: str) -> dict[str, Any]:
    """A task as TaskSimpleSerializer gives it to the backend."""
    return {
        "id": task_id,
        "data": {"image": image},
        "meta": {},
        "annotations": [],
        "predictions": [],
        "project": 3,
    }


def predict_body(tasks: list[dict[str, Any]], config: str | None = None) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "project": PROJECT,
        "label_config": config or label_config(TAXONOMY),
        "params": {"login": None, "password": None, "context": None},
    }


def token(service: Service, scope: str = "annotate") -> dict[str, str]:
    return {"Authorization": f"Token {service.keys[scope]}"}


def test_health_says_up_with_the_model_version(service: Service) -> None:
    response = service.client.get("/labelstudio/health", headers=token(service))
    assert response.status_code == 200
    body = response.json()
    assert (
        body["status"] == "UP"
        and body["model_version"] == service.client.get("/readyz").json()["model_version"]
    )


@pytest.mark.parametrize(("stored", "orientation"), [("photos/street.png", 1), ("photos/sideways.png", 6)])
def test_predict_gives_percent_boxes_of_the_upright_photo(
    service: Service, street_rgb: np.ndarray, tmp_path: Path, stored: str, orientation: int
) -> None:
    from vision.detect.backends import load_detector

    path = write_png(street_rgb, tmp_path / "files" / stored, orientation)
    response = service.client.post(
        "/labelstudio/predict",
        json=predict_body([task(7, f"/data/local-files/?d={stored}")]),
        headers=token(service),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    [prediction] = body["results"]
    upright = decode_photo(path.read_bytes())
    height, width = upright.image.shape[:2]
    assert (width, height) == (640, 400)  # the sideways file is 400 x 640 on disk
    expected = expected_boxes(load_detector("current", models_dir=MODELS, taxonomy=TAXONOMY)(upright.image))
    assert prediction["model_version"] == body["model_version"] and body["model_version"].startswith(
        find_model("current", models_dir=MODELS).name + "@"
    )
    assert len(prediction["result"]) == len(expected) >= 2
    for region, box in zip(prediction["result"], expected, strict=True):
        assert region["type"] == "rectanglelabels" and (region["from_name"], region["to_name"]) == (
            "label",
            "image",
        )
        assert (region["original_width"], region["original_height"]) == (640, 400)
        assert region["value"]["rectanglelabels"] == [box.class_name]
        percent = to_percent(box.xyxy, width, height)
        assert [region["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx(
            [percent[k] for k in ("x", "y", "width", "height")], abs=2e-3
        )
        assert region["score"] == pytest.approx(box.confidence, abs=1e-4)
    assert prediction["score"] == pytest.approx(np.mean([b.confidence for b in expected]), abs=1e-3)


def test_predict_answers_in_the_projects_own_label_names(
    service: Service, street_rgb: np.ndarray, tmp_path: Path
) -> None:
    write_png(street_rgb, tmp_path / "files" / "a.png")
    config = (
        '<View><Image name="photo" value="$picture" zoom="true"/>'
        '<RectangleLabels name="objects" toName="photo"><Label value="Trash"/><Label value="Tree"/>'
        "</RectangleLabels></View>"
    )
    tasks = [
        {"id": 1, "data": {"picture": "a.png"}},
        {"id": 2, "data": {"picture": "/data/local-files/?d=blank.png"}},
    ]
    write_png(np.full((64, 96, 3), 90, np.uint8), tmp_path / "files" / "blank.png")
    response = service.client.post(
        "/labelstudio/predict", json=predict_body(tasks, config), headers=token(service)
    )
    assert response.status_code == 200, response.text
    first, blank = response.json()["results"]  # one per task, in order
    labels = {region["value"]["rectanglelabels"][0] for region in first["result"]}
    assert (
        labels <= {"Trash"} and labels
    )  # garbage is `Trash` here (an alias); other classes are not asked for
    assert {(r["from_name"], r["to_name"]) for r in first["result"]} == {("objects", "photo")}
    assert blank["result"] == [] and blank["score"] == 0.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (lambda k: {"Authorization": f"Token {k['annotate']}"}, 200),
        (lambda k: {"Authorization": f"Bearer {k['annotate']}"}, 200),
        (lambda k: {"Authorization": basic("labelstudio", k["annotate"])}, 200),  # the ML-backend connection
        (lambda k: {"X-API-Key": k["annotate"]}, 200),
        (lambda k: {"Authorization": f"Token {k['admin']}"}, 200),
        (lambda k: {}, 401),
        (lambda k: {"Authorization": "Token so_000000000000_wrong"}, 401),
        (lambda k: {"Authorization": basic("labelstudio", "not-a-key")}, 401),
        (lambda k: {"Authorization": f"Token {k['detect']}"}, 403),
    ],
)
def test_every_call_needs_a_key_with_the_annotate_scope(service: Service, headers: Any, status: int) -> None:
    body = {
        "project": PROJECT,
        "schema": label_config(TAXONOMY),
        "hostname": "http://ls:8080",
        "access_token": "x",
    }
    response = service.client.post("/labelstudio/setup", json=body, headers=headers(service.keys))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {
            "model_version": service.client.get("/labelstudio/health", headers=token(service)).json()[
                "model_version"
            ]
        }


@pytest.mark.parametrize(
    ("image", "detail"),
    [
        ("/data/local-files/?d=../secret.png", "leaves the allowed folder"),
        ("/data/local-files/?d=photos/../../secret.png", "leaves the allowed folder"),
        ("../secret.png", "leaves the allowed folder"),
        ("/etc/passwd", "no such file under the files root"),  # read under the root, never from /
        ("http://169.254.169.254/latest/meta-data", "fetching task images is not enabled"),
        ("/data/upload/3/abc.jpg", "fetching task images is not enabled"),
        ("/data/local-files/?d=missing.png", "no such file under the files root"),
        ("/data/local-files/?d=cut.png", "cut.png"),  # a truncated file: not an image
        ("/data/local-files/?d=\ud800.png", "half a character"),  # stat raised: the batch was a 500
        ("\ud800.png", "half a character"),
    ],
)
def test_a_bad_task_gets_an_empty_prediction_and_the_others_theirs(
    service: Service,
    street_rgb: np.ndarray,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    image: str,
    detail: str,
) -> None:
    """Issue 29: one task whose image leaves the allowed folder made the whole batch a 422, and
    Label Studio stored no prediction at all. Now the bad task is empty and named in the log."""
    write_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "secret.png")
    good = write_png(street_rgb, tmp_path / "files" / "good.png")
    (tmp_path / "files" / "cut.png").write_bytes(good.read_bytes()[:200])
    tasks = [task(4, "/data/local-files/?d=good.png"), task(5, image), task(6, "good.png")]
    with caplog.at_level("WARNING", logger="streetorder.labelstudio"):
        response = service.client.post(  # json.dumps: `\ud800` as its escape, as a client may send it
            "/labelstudio/predict",
            content=json.dumps(predict_body(tasks)),
            headers={**token(service), "Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    first, bad, last = response.json()["results"]
    assert bad["result"] == [] and bad["score"] == 0.0 and bad["model_version"] == first["model_version"]
    assert len(first["result"]) >= 2 and first["result"] == last["result"]
    [line] = [r.getMessage() for r in caplog.records if "tasks[1]" in r.getMessage()]
    assert "tasks[1] (id 5)" in line and detail in line


def test_setup_refuses_a_config_without_a_known_box_label(service: Service) -> None:
    config = (
        '<View><Image name="image" value="$image"/>'
        '<Choices name="c" toName="image"><Choice value="x"/></Choices></View>'
    )
    response = service.client.post(
        "/labelstudio/setup", json={"project": PROJECT, "schema": config}, headers=token(service)
    )
    assert response.status_code == 422 and "RectangleLabels" in response.json()["detail"]


def write_photo(path: Path) -> Path:
    """A 640x400 JPEG, the size the events' regions declare."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 400), (90, 110, 70)).save(path, format="JPEG")
    return path


@pytest.fixture(autouse=True)
def photos(tmp_path: Path) -> Path:
    """The photos the events below name, under the files root: an annotation of a photo that is not
    there is refused (test_an_annotation_of_a_photo_the_project_lacks_is_a_422_and_nothing_is_kept)."""
    folder = tmp_path / "files" / "photos"
    for task_id in [*range(1, 11), "7" * 100, "7" * 99 + "8"]:
        write_photo(folder / f"{task_id}.jpg")
    return folder


def annotation_event(action: str, task_id: int | str, annotation_id: int) -> dict[str, Any]:
    """A Label Studio webhook payload (send_payload on)."""
    return {
        "action": action,
        "project": {"id": 3, "title": "street", "label_config": label_config(TAXONOMY)},
        "task": {
            "id": task_id,
            "data": {"image": f"/data/local-files/?d=photos/{task_id}.jpg"},
            "project": 3,
        },
        "annotation": {
            "id": annotation_id,
            "result": [
                {
                    "id": "a1",
                    "type": "rectanglelabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": 640,
                    "original_height": 400,
                    "value": {
                        "x": 10,
                        "y": 20,
                        "width": 30,
                        "height": 40,
                        "rotation": 0,
                        "rectanglelabels": ["garbage"],
                    },
                }
            ],
            "was_cancelled": False,
            "task": task_id,
        },
    }


def test_webhooks_keep_annotations_and_queue_one_retraining_job(service: Service, tmp_path: Path) -> None:
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    first = post(annotation_event("ANNOTATION_CREATED", 1, 10))
    assert first.status_code == 201 and first.json() == {
        "status": "ok",
        "recorded": True,
        "pending_annotations": 1,
        "job": None,
    }
    repeat = post(annotation_event("ANNOTATION_UPDATED", 1, 10)).json()
    assert repeat["pending_annotations"] == 1 and repeat["recorded"] is False  # the same version again
    second = post(annotation_event("ANNOTATION_CREATED", 2, 11)).json()
    assert second["pending_annotations"] == 2 and second["job"]  # retrain_after = 2
    deleted = post(annotation_event("ANNOTATION_DELETED", 2, 11)).json()
    assert deleted["pending_annotations"] == 1
    training = post({"action": "START_TRAINING", "project": {"id": 3}}).json()
    assert training["job"] == second["job"]  # one queued job is enough; the reason is added to it
    unknown = post({"action": "PROJECT_UPDATED", "project": {"id": 3}})
    assert unknown.status_code == 200 and unknown.json()["status"] == "Unknown event"
    [job] = list((tmp_path / "annotations" / "jobs").glob("*.queued.json"))
    body = json.loads(job.read_text())
    assert len(body["reasons"]) == 2 and "START_TRAINING" in body["reasons"][1]
    [kept] = list((tmp_path / "annotations" / "inbox").glob("*.json"))
    kept_task = json.loads(kept.read_text())
    assert kept_task["id"] == 1 and kept_task["annotations"][0]["result"][0]["value"]["rectanglelabels"] == [
        "garbage"
    ]
    assert kept_task["label_config"] == label_config(TAXONOMY)  # what its annotators could label
    assert post({"action": "START_TRAINING"}).status_code == 201
    assert service.client.post("/labelstudio/webhook", json={"action": "START_TRAINING"}).status_code == 401


def test_tasks_with_long_ids_alike_in_their_first_digits_keep_an_annotation_each(
    service: Service, tmp_path: Path
) -> None:
    """Inbox files were named by the first 40 safe characters of the id: two 100-character task ids
    that differ only at the end shared one file, and the second annotation overwrote the first.
    (As text: a 100-digit number is no id Label Studio's database holds, refused since.)"""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    first, second = "7" * 100, "7" * 99 + "8"
    assert post(annotation_event("ANNOTATION_CREATED", first, 10)).json()["pending_annotations"] == 1
    assert post(annotation_event("ANNOTATION_CREATED", second, 11)).json()["pending_annotations"] == 2
    inbox = (tmp_path / "annotations" / "inbox").glob("*.json")
    kept = sorted(json.loads(path.read_text())["id"] for path in inbox)
    assert kept == [first, second]
    assert post(annotation_event("ANNOTATION_DELETED", second, 11)).json()["pending_annotations"] == 1


def test_train_request_of_older_label_studio_queues_a_job(service: Service, tmp_path: Path) -> None:
    event = annotation_event("ANNOTATION_CREATED", 4, 40)
    body = {
        "annotations": [{**event["task"], "annotations": [event["annotation"]], "predictions": []}],
        "project": PROJECT,
        "label_config": label_config(TAXONOMY),
        "params": {"login": None, "password": None},
    }
    response = service.client.post("/labelstudio/train", json=body, headers=token(service))
    assert response.status_code == 201 and response.json()["job"]
    assert len(list((tmp_path / "annotations" / "inbox").glob("*.json"))) == 1


def test_versions_lists_the_loaded_model(service: Service) -> None:
    response = service.client.get("/labelstudio/versions", headers=token(service))
    assert response.json() == {
        "versions": [
            service.client.get("/labelstudio/health", headers=token(service)).json()["model_version"]
        ]
    }


def test_png_exif_orientation_is_what_the_loader_applies() -> None:
    """The sideways test photo above relies on this: PNG eXIf orientation 6 is turned upright."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 20)).transpose(Image.Transpose.ROTATE_90).save(
        buffer, format="PNG", exif=exif_for(orientation=6)
    )
    assert decode_photo(buffer.getvalue()).image.shape[:2] == (20, 40)


def test_label_studios_own_skip_bulk_and_delete_payloads(service: Service, tmp_path: Path) -> None:
    """What Label Studio 1.23 sends (webhooks/models.py): a skipped task is an ANNOTATION_CREATED
    whose annotation was_cancelled; accepting predictions as annotations is one ANNOTATIONS_CREATED
    with lists; a deletion is ANNOTATIONS_DELETED with the ids only. The skip replaced the task's
    real annotation in the inbox (an import then found the task unannotated), the bulk payload was
    a 422, and a deletion was an 'Unknown event' (the deleted annotation stayed to be trained on)."""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    inbox = tmp_path / "annotations" / "inbox"
    kept = lambda: {json.loads(p.read_text())["annotations"][0]["id"] for p in inbox.glob("*.json")}  # noqa: E731
    assert post(annotation_event("ANNOTATION_CREATED", 1, 10)).json()["recorded"] is True
    skip = annotation_event("ANNOTATION_CREATED", 1, 11)
    skip["annotation"].update(result=[], was_cancelled=True)
    skipped = post(skip)
    assert skipped.status_code == 201 and skipped.json()["recorded"] is False
    assert kept() == {10}

    bulk = [annotation_event("ANNOTATION_CREATED", task_id, 20 + task_id) for task_id in (5, 6)]
    created = post(
        {
            "action": "ANNOTATIONS_CREATED",
            "project": bulk[0]["project"],
            "annotation": [event["annotation"] for event in bulk],
            "task": [event["task"] for event in bulk],
        }
    )
    assert created.status_code == 201 and created.json()["recorded"] is True
    assert kept() == {10, 25, 26}

    deleted = post(
        {"action": "ANNOTATIONS_DELETED", "project": {"id": 3}, "annotations": [{"id": 10}, {"id": 25}]}
    )
    assert deleted.status_code == 201 and deleted.json()["pending_annotations"] == 1
    assert kept() == {26}


def test_an_older_annotation_delivered_late_leaves_the_newer_one(service: Service, tmp_path: Path) -> None:
    """Webhooks are sent from a job queue and may be replayed: annotator A's annotation arriving
    after annotator B's newer one on the same task replaced it. Once B's is deleted, A's comes in
    again (a pull brings it)."""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    first, second = (
        annotation_event("ANNOTATION_CREATED", 8, 30),
        annotation_event("ANNOTATION_CREATED", 8, 31),
    )
    first["annotation"]["updated_at"] = "2025-10-01T09:00:00.000000Z"
    second["annotation"]["updated_at"] = "2025-10-01T17:00:01+08:00"  # 09:00:01 UTC: one second later
    assert post(second).json()["recorded"] is True
    assert post(first).json()["recorded"] is False  # older: B's stays
    [path] = (tmp_path / "annotations" / "inbox").glob("*.json")
    assert json.loads(path.read_text())["annotations"][0]["id"] == 31
    post({"action": "ANNOTATIONS_DELETED", "project": {"id": 3}, "annotations": [{"id": 31}]})
    assert post(first).json()["recorded"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["task"].pop("id"), "task.id"),
        (lambda e: e["task"].update(id={"a": 1}), "task.id"),
        (lambda e: e["task"].update(id=int("9" * 100)), "task.id"),  # no database holds it: kept
        (lambda e: e["annotation"].update(id=-(2**64)), "annotation.id"),
        (lambda e: e["task"].update(data="photos/1.jpg"), "task.data"),
        (lambda e: e["annotation"].update(result="garbage"), "annotation.result"),
        (lambda e: e["annotation"].pop("id"), "annotation.id"),
        (lambda e: e.pop("project"), "project.id"),
        (lambda e: e.update(task=[e["task"]]), "task"),
    ],
)
def test_a_malformed_annotation_event_is_a_422_naming_the_field(
    service: Service, tmp_path: Path, change: Any, field: str
) -> None:
    """Such events were recorded: tasks without an id all went to one inbox file `<project>-None`
    (each replacing the one before), and the others failed every retraining job after."""
    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    change(event)
    answer = service.client.post("/labelstudio/webhook", json=event, headers=token(service))
    assert answer.status_code == 422 and answer.json()["detail"].startswith(f"{field}: "), answer.text
    assert not (tmp_path / "annotations" / "inbox").exists() or not any(
        (tmp_path / "annotations" / "inbox").iterdir()
    )
    stray = {
        **annotation_event("ANNOTATIONS_CREATED", 1, 10),
        "task": [],
        "annotation": [{"id": 3, "task": 9}],
    }
    refused = service.client.post("/labelstudio/webhook", json=stray, headers=token(service))
    assert refused.status_code == 422 and refused.json()["detail"].startswith("annotation[0].task: ")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            lambda e: e["task"].update(id=int("9" * 100)),
            "task.id: 9999999999999999999999999999...99999999999999999999999999999 is no id "
            "(a number below 2**63, or a text of at most 100 characters)",
        ),
        (lambda e: e["annotation"].pop("id"), "annotation.id: an annotation needs its id (got no id)"),
        (
            lambda e: e["annotation"].update(result=None),
            "annotation.result: expected a list of regions, got None",
        ),
    ],
)
def test_a_refused_id_or_result_says_what_is_wrong_with_it(
    service: Service, change: Any, detail: str
) -> None:
    """A 100-digit task id was told "a task needs its id (a number, got 999...)", a number; a
    result of null "a list of regions", as if that were what was sent."""
    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    change(event)
    answer = service.client.post("/labelstudio/webhook", json=event, headers=token(service))
    assert answer.status_code == 422 and answer.json()["detail"] == detail, answer.text


def test_a_webhook_body_cut_short_is_a_422_saying_it_is_no_json(service: Service, tmp_path: Path) -> None:
    """A truncated body was answered "42: JSON decode error": the 42 is where the JSON stopped."""
    body = json.dumps(annotation_event("ANNOTATION_CREATED", 1, 10)).encode()[:42]
    answer = service.client.post(
        "/labelstudio/webhook", content=body, headers={**token(service), "Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and answer.json()["detail"].startswith(
        "body: not valid JSON at character 42: "
    ), answer.text
    assert not (tmp_path / "annotations" / "inbox").exists()


def train_body(*task_ids: int) -> dict[str, Any]:
    """What older Label Studio sends to /train: every annotated task with its annotations."""
    events = [annotation_event("ANNOTATION_CREATED", task_id, 10 * task_id) for task_id in task_ids]
    return {
        "annotations": [{**e["task"], "annotations": [e["annotation"]], "predictions": []} for e in events],
        "project": PROJECT,
        "label_config": label_config(TAXONOMY),
    }


def _half_character(body: dict[str, Any]) -> None:
    body["annotations"][1]["data"]["image"] = "photos/\ud800.jpg"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["annotations"][1].pop("id"), "annotations[1].id"),  # all went to `<project>-None`
        (lambda b: b["annotations"][1].update(data="photos/1.jpg"), "annotations[1].data"),
        (
            lambda b: b["annotations"][1]["annotations"][0].update(result="garbage"),
            "annotations[1].annotations[0].result",
        ),
        (lambda b: b["annotations"][1]["annotations"][0].pop("id"), "annotations[1].annotations[0].id"),
        (lambda b: b["annotations"][1].update(annotations="garbage"), "annotations[1].annotations"),
        (lambda b: b.update(project={"id": [3]}), "project"),
        (lambda b: b.pop("project"), "project"),
        (_half_character, "annotations[1].data.image"),
    ],
)
def test_a_malformed_train_request_is_a_422_and_keeps_none_of_its_tasks(
    service: Service, tmp_path: Path, change: Any, field: str
) -> None:
    """/train kept the tasks before a bad one (a 422 with half of them in the inbox), tasks
    without an id in one inbox file `<project>-None`, and a result that was no list."""
    body = train_body(1, 2)
    change(body)
    answer = service.client.post(
        "/labelstudio/train",
        content=json.dumps(body),  # json.dumps writes `\ud800` as its escape, as a client may
        headers={**token(service), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and answer.json()["detail"].startswith(f"{field}: "), answer.text
    inbox = tmp_path / "annotations" / "inbox"
    assert not inbox.exists() or not any(inbox.iterdir())
    assert not (tmp_path / "annotations" / "jobs").exists()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("task", "data", "image"), "task.data.image"),
        (
            ("annotation", "result", 0, "value", "rectanglelabels", 0),
            "annotation.result[0].value.rectanglelabels[0]",
        ),
        (("project", "label_config"), "project.label_config"),
    ],
)
def test_an_event_with_half_a_character_is_a_422_not_a_500(
    service: Service, tmp_path: Path, path: tuple[Any, ...], field: str
) -> None:
    """JSON may write `\\ud800`, half of a UTF-16 pair, and Python's reader takes it: the inbox
    file's write then failed (UnicodeEncodeError, a 500)."""
    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = "photos/\ud800.jpg"
    answer = service.client.post(
        "/labelstudio/webhook",
        content=json.dumps(event),
        headers={**token(service), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and answer.json()["detail"].startswith(f"{field}: "), answer.text
    assert not (tmp_path / "annotations" / "inbox").exists()


def _polygon(points: list[list[float]]) -> dict[str, Any]:
    """A polygonlabels result as Label Studio sends it (percent points)."""
    return {
        "id": "p1",
        "type": "polygonlabels",
        "from_name": "outline",
        "to_name": "image",
        "original_width": 640,
        "original_height": 400,
        "image_rotation": 0,
        "value": {"points": points, "closed": True, "polygonlabels": ["garbage"]},
    }


def _region(event: dict[str, Any]) -> dict[str, Any]:
    region: dict[str, Any] = event["annotation"]["result"][0]
    return region


HOSTILE_EVENTS = [
    ("rotated", lambda e: _region(e)["value"].update(rotation=30), "annotation.result[0]", "rotated box (30"),
    (
        "outside 0-100 %",
        lambda e: _region(e)["value"].update(x=90),
        "annotation.result[0]",
        "outside the 640x400",
    ),
    ("negative width", lambda e: _region(e)["value"].update(width=-5), "annotation.result[0]", "empty box"),
    (
        "unknown label",
        lambda e: _region(e)["value"].update(rectanglelabels=["tree"]),
        "annotation.result[0]",
        "label 'tree' is neither",
    ),
    (
        "box without its box",
        lambda e: _region(e).update(value=None),
        "annotation.result[0].value",
        "expected the box object",
    ),
    (
        "image size zero",
        lambda e: _region(e).update(original_height=0),
        "annotation.result[0]",
        "not a size an image has",
    ),
    (
        "a brush beside the box",
        lambda e: e["annotation"]["result"].append(
            {"type": "brushlabels", "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["garbage"]}}
        ),
        "annotation.result",
        "objects drawn as brushlabels beside its boxes",
    ),
    (
        "a polygon of 2 points",
        lambda e: e["annotation"]["result"].append(_polygon([[1, 1], [9, 9]])),
        "annotation.result[1].value.points",
        "a polygon of 2 point(s): at least 3 enclose an object",
    ),
    (
        "a polygon wholly outside the photo",
        lambda e: e["annotation"]["result"].append(_polygon([[101, 1], [140, 1], [120, 50]])),
        "annotation.result[1]",
        "has no point inside the 640x400 image",
    ),
    ("no image in the data", lambda e: e["task"].update(data={"note": "x"}), "task.data", "no image URL"),
    (
        "image on another server",  # an import matched it by file name to whatever local photo
        lambda e: e["task"]["data"].update(image="http://elsewhere.example/photos/1.jpg"),
        "task.data",
        "an image on another server (elsewhere.example)",
    ),
    (
        "image as a data: URI",
        lambda e: e["task"]["data"].update(image="data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
        "task.data",
        "an image inside the export (a data: URI) is not read",
    ),
    (
        "image leaving the files root",
        lambda e: e["task"]["data"].update(image="/data/local-files/?d=../../etc/passwd"),
        "task.data",
        "'../../etc/passwd': leaves the allowed folder (the local-files root)",
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "field", "why"), HOSTILE_EVENTS, ids=[h[0] for h in HOSTILE_EVENTS]
)
def test_an_annotation_the_import_would_refuse_is_a_422_and_changes_nothing(
    service: Service, tmp_path: Path, case: str, change: Any, field: str, why: str
) -> None:
    """Such annotations were kept with a 201 and failed every retraining job after (back to the
    inbox, named in a job file nobody reads); now their sender hears it at once, in the import's
    words, without the server's folders, and the task's earlier annotation stays as it was."""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    assert post(annotation_event("ANNOTATION_CREATED", 1, 10)).status_code == 201
    [kept] = list((tmp_path / "annotations" / "inbox").glob("*.json"))
    before = kept.read_bytes()
    event = annotation_event("ANNOTATION_UPDATED", 1, 10)
    event["annotation"]["updated_at"] = "2030-01-01T00:00:00Z"  # a newer version: it would replace
    change(event)
    answer = post(event)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith(f"{field}: ") and why in detail, detail
    assert str(tmp_path) not in answer.text  # no server path for the client
    assert kept.read_bytes() == before
    bulk = {  # one good and one bad annotation at once: neither is kept
        **annotation_event("ANNOTATIONS_CREATED", 2, 20),
        "task": [annotation_event("ANNOTATION_CREATED", 2, 20)["task"], event["task"] | {"id": 3}],
        "annotation": [
            annotation_event("ANNOTATION_CREATED", 2, 20)["annotation"],
            {**event["annotation"], "task": 3},
        ],
    }
    assert post(bulk).status_code == 422
    assert list((tmp_path / "annotations" / "inbox").glob("*.json")) == [kept]
    train = train_body(4)
    train["annotations"].append({**event["task"], "id": 5, "annotations": [event["annotation"]]})
    refused = service.client.post("/labelstudio/train", json=train, headers=token(service))
    assert refused.status_code == 422 and refused.json()["detail"].startswith("annotations[1]"), refused.text
    assert list((tmp_path / "annotations" / "inbox").glob("*.json")) == [kept]


def test_a_small_box_of_an_annotation_without_its_image_size_is_kept(service: Service) -> None:
    """Without original_width/height the webhook judged percent as pixels of a 100x100 image: a box
    0.5 % wide (20 px of a 4000 px photo) was a 422 "empty box" the import would have taken. A box
    of no area stays a 422."""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    region = _region(event)
    del region["original_width"], region["original_height"]
    region["value"].update(width=0.5, height=0.8)
    kept = post(event)
    assert kept.status_code == 201, kept.text
    region["value"].update(width=0)
    flat = post({**event, "action": "ANNOTATION_UPDATED"})
    assert flat.status_code == 422 and "empty box" in flat.json()["detail"], flat.text


MISSING_PHOTOS = [
    (
        "never there",
        lambda photos: "/data/local-files/?d=photos/gone.jpg",
        "'/data/local-files/?d=photos/gone.jpg': no such file under the allowed folder (the local-files "
        "root)",
        "'/data/local-files/?d=photos/gone.jpg': no such file under the allowed folder (--files-root ",
    ),
    (
        "deleted since it was labelled",
        lambda photos: (photos / "1.jpg").unlink() or "/data/local-files/?d=photos/1.jpg",
        "'/data/local-files/?d=photos/1.jpg': no such file under the allowed folder (the local-files root)",
        "'/data/local-files/?d=photos/1.jpg': no such file under the allowed folder (--files-root ",
    ),
    (
        "a plain path",
        lambda photos: "photos/gone.jpg",
        "'photos/gone.jpg': image not found (looked in the allowed folder (the local-files root))",
        "'photos/gone.jpg': image not found (looked in ",
    ),
    (
        "no image",
        lambda photos: (
            (photos / "notes.jpg").write_text("minutes") and "/data/local-files/?d=photos/notes.jpg"
        ),
        "'/data/local-files/?d=photos/notes.jpg': not an image",
        "notes.jpg: not an image",
    ),
    (
        "uploaded to Label Studio, none configured",
        lambda photos: "/data/upload/3/0a1b2c3d-street.jpg",
        "image not found (looked in no folder; not fetched: no Label Studio URL configured)",
        "image not found (looked in no folder; not fetched: no Label Studio URL configured)",
    ),
]


@pytest.mark.parametrize(
    ("case", "image", "why", "imported"), MISSING_PHOTOS, ids=[m[0] for m in MISSING_PHOTOS]
)
def test_an_annotation_of_a_photo_the_project_lacks_is_a_422_and_nothing_is_kept(
    service: Service,
    tmp_path: Path,
    photos: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    image: Any,
    why: str,
    imported: str,
) -> None:
    """An annotation of a photo the files root does not hold (never there, deleted since, no image,
    an upload the service cannot fetch) was kept with a 201: a training label of no photo, which
    every retraining job then handed back to the inbox, named only in its job file. Now the webhook
    and /train refuse it naming the task and the photo as sent (never the server's folder), keep
    nothing and leave the task's earlier annotation; `data import` refuses that task's export in
    the same words (one function finds the photo for both)."""
    post = lambda body: service.client.post("/labelstudio/webhook", json=body, headers=token(service))  # noqa: E731
    assert post(annotation_event("ANNOTATION_CREATED", 2, 20)).status_code == 201
    inbox = tmp_path / "annotations" / "inbox"
    received = (tmp_path / "annotations" / "received.json").read_bytes()
    event = annotation_event("ANNOTATION_CREATED", 7, 70)
    event["task"]["data"]["image"] = image(photos)
    answer = post(event)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["detail"].startswith("task.data: the photo of task 7, "), problem
    assert why in problem["detail"], problem
    assert str(tmp_path) not in answer.text
    assert [json.loads(p.read_text())["id"] for p in inbox.glob("*.json")] == [2]
    assert (tmp_path / "annotations" / "received.json").read_bytes() == received  # not counted as received
    bulk = {
        **event,
        "action": "ANNOTATIONS_CREATED",
        "task": [annotation_event("ANNOTATION_CREATED", 3, 30)["task"], event["task"]],
        "annotation": [annotation_event("ANNOTATION_CREATED", 3, 30)["annotation"], event["annotation"]],
    }
    refused = post(bulk)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("task[1].data: the photo of task 7")
    train = train_body(4)
    train["annotations"].append({**event["task"], "annotations": [event["annotation"]]})
    refused = service.client.post("/labelstudio/train", json=train, headers=token(service))
    assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
    assert [json.loads(p.read_text())["id"] for p in inbox.glob("*.json")] == [2]

    from serve.cli.main import main

    export = tmp_path / "export.json"
    export.write_text(json.dumps([{**event["task"], "annotations": [event["annotation"]]}]))
    argv = ["data", "import", str(export), "--dataset", "bureau", "--files-root", str(tmp_path / "files")]
    argv += ["--datasets-dir", str(tmp_path / "datasets"), "--labelled", "garbage", "--no-holdout-check"]
    assert main(argv) == 1 and not (tmp_path / "datasets" / "bureau" / "manifest.json").exists()
    said = capsys.readouterr().err
    assert "export.json: tasks[0] (id 7): " in said and imported in said, said


def test_a_task_naming_its_photo_by_a_plain_path_imports_from_the_files_root(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The webhook reads a plain path (`photos/1.jpg`) under the files root, as /predict does, and
    kept such an annotation; the import the retraining job runs looked for it only beside its own
    task file and said "image not found". Both find it under the files root now."""
    from serve.cli.main import main

    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    event["task"]["data"]["image"] = "photos/1.jpg"
    answer = service.client.post("/labelstudio/webhook", json=event, headers=token(service))
    assert answer.status_code == 201, answer.text
    export = tmp_path / "elsewhere" / "export.json"
    export.parent.mkdir()
    export.write_text(json.dumps([{**event["task"], "annotations": [event["annotation"]]}]))
    argv = ["data", "import", str(export), "--dataset", "bureau", "--files-root", str(tmp_path / "files")]
    argv += ["--datasets-dir", str(tmp_path / "datasets"), "--labelled", "garbage", "--no-holdout-check"]
    assert main(argv) == 0, capsys.readouterr().err


POLYGON_CONFIG = (
    '<View><Image name="image" value="$image"/><PolygonLabels name="outline" toName="image">'
    '<Label value="garbage"/><Label value="car"/></PolygonLabels></View>'
)


def test_a_polygon_annotation_is_kept_and_imported_as_its_enclosing_box(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An annotator's polygons came in by the webhook (201) and the retraining job's import skipped
    them as "unsupported" with only a count: the work was dropped. The job's import (the inbox's
    task with its project's config) takes each polygon as the box that encloses it, clipped to the
    photo where it runs past it (x up to 110 % here)."""
    from serve.cli.main import main

    event = annotation_event("ANNOTATION_CREATED", 1, 10)
    event["project"]["label_config"] = POLYGON_CONFIG
    event["annotation"]["result"] = [
        _polygon([[10, 20], [40, 25], [35, 60]]),
        _polygon([[80, 50], [110, 55], [90, 90]]),
    ]
    answer = service.client.post("/labelstudio/webhook", json=event, headers=token(service))
    assert answer.status_code == 201 and answer.json()["recorded"] is True, answer.text
    [kept] = list((tmp_path / "annotations" / "inbox").glob("*.json"))
    export = tmp_path / "job" / "tasks.json"  # as the retraining job writes the inbox's tasks
    export.parent.mkdir()
    export.write_text(json.dumps([json.loads(kept.read_text())]))
    argv = ["data", "import", str(export), "--dataset", "bureau", "--files-root", str(tmp_path / "files")]
    argv += [
        "--datasets-dir",
        str(tmp_path / "datasets"),
        "--no-holdout-check",
        "--format",
        "labelstudio-json",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "unsupported" not in capsys.readouterr().out
    manifest = json.loads((tmp_path / "datasets" / "bureau" / "manifest.json").read_text())
    [entry] = manifest["images"]
    assert entry["labels"] == [["garbage", 64.0, 80.0, 256.0, 240.0], ["garbage", 512.0, 200.0, 640.0, 360.0]]
    assert entry["labelled"] == ["garbage", "car"]  # the polygon control's labels
