"""The annotators' loop against a real Label Studio (issue 29), as docs/annotation.md tells a new user.

Label Studio comes from PyPI into a virtualenv of its own (`make labelstudio`: it pins Django and
much else) and runs on a loopback port with a temporary data folder; the service runs on a real
uvicorn with the current model. Through Label Studio's own REST API the test creates a project
with streetorder's labelling config, adds the local storage (on a sub-folder: the document root
itself is refused), connects the ML backend, has Label Studio retrieve predictions (one task's
image leaves the allowed folder: it gets an empty prediction, the others theirs), submits an
annotation before the webhook has its key (401: the webhook loses it, `data pull` brings it),
edits it after (the webhook brings the new version, the next pull recognises it), imports the
project's export (labelled: exactly the project's classes) and the inbox, and starts training
(a queued retraining job).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest
from configured import CONFIGS, MODELS, TAXONOMY
from conftest import _free_port, serving

from serve.cases.settings import Settings, get_settings
from serve.cli.main import main
from vision.data.annotations.dataset import Dataset
from vision.data.annotations.images import ImageFinder, TaskImages
from vision.data.annotations.inbox import pending_annotations
from vision.data.annotations.label_config import label_config
from vision.data.annotations.pull import LabelStudio
from vision.data.annotations.records import AnnotationError
from vision.modelops.promote import CONFIG, load_policy
from vision.modelops.retrain import import_inbox, list_jobs

VENV = Path(
    os.environ.get(
        "STREETORDER_LABELSTUDIO_VENV", Path.home() / ".cache" / "streetorder" / "labelstudio-venv"
    )
)
# training photos: the frozen holdout (the validation splits) is never imported
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "garbage-cn" / "images" / "train"
START_TIMEOUT_S = 900  # the first start migrates Label Studio's database: minutes on two cores


@dataclass
class Loop:
    ls: LabelStudio
    ls_url: str
    root: Path  # Label Studio's local-files document root (and the service's files root)
    settings: Settings  # the service's
    backend: str  # the service's /labelstudio URL
    key: str  # an `annotate` key
    model_version: str  # of the model the service loaded


def wait_until(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:g} s")


@pytest.fixture(scope="module")
def labelstudio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabelStudio, Path]]:
    """Label Studio from PyPI on 127.0.0.1, local files served from a temporary document root."""
    executable = VENV / "bin" / "label-studio"
    if not (VENV / ".installed").exists() or not executable.exists():
        pytest.skip(f"Label Studio is not installed in {VENV} (`make labelstudio` installs it from PyPI)")
    folder = tmp_path_factory.mktemp("labelstudio")
    root = folder / "files"
    (root / "photos").mkdir(parents=True)
    token = secrets.token_hex(20)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STREETORDER_", "DJANGO_"))},
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # `Authorization: Token <user token>`
        "ML_BLOCK_LOCAL_IP": "false",  # the service runs on 127.0.0.1
        "SSRF_PROTECTION_ENABLED": "false",  # ... and so do its webhooks
    }
    log = (folder / "labelstudio.log").open("wb")
    server = subprocess.Popen(
        [
            str(executable),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--username",
            "annotator@example.com",
            "--password",
            secrets.token_hex(8),
            "--user-token",
            token,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    ls = LabelStudio(url, token)

    def up() -> bool:
        assert server.poll() is None, (folder / "labelstudio.log").read_text(errors="replace")[-3000:]
        try:
            return bool(ls.call("GET", "/api/projects"))
        except AnnotationError:
            return False

    try:
        wait_until(up, START_TIMEOUT_S, f"Label Studio on {url} (log: {folder / 'labelstudio.log'})")
        yield ls, root
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def loop(labelstudio: tuple[LabelStudio, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """The service with the current model on a real uvicorn, reading task images under the same root."""
    from serve.api.app import create_app
    from serve.cases.auth import create_key
    from serve.cases.db import transaction

    ls, root = labelstudio
    folder = tmp_path_factory.mktemp("service")
    settings = Settings(
        secret="labelstudio-test-secret-0123456789",
        db_url=f"sqlite:///{folder / 'cases.db'}",
        evidence_dir=folder / "evidence",
        labelstudio_files_root=root,
        labelstudio_url=ls.url,
        labelstudio_token=ls.token,
        annotations_dir=folder / "annotations",
    )
    app = create_app(settings)
    with serving(app) as url:
        state = app.state.service
        if state.detector is None:
            pytest.skip(f"no current model: {state.model_error}")
        with transaction(state.sessions) as session:
            key, _ = create_key(
                session,
                name="labelstudio",
                scopes=["annotate"],
                pepper=state.verifier.pepper,
                now=datetime.now(UTC),
            )
        yield Loop(ls, ls.url, root, settings, f"{url}/labelstudio", key, state.detector.version)


def street_photo(root: Path) -> str:
    """A garbage-cn training photo on which the current model finds a box, under photos/."""
    from vision.detect.backends import load_detector

    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} not found (../shared beside the project)")
    detector = load_detector("current", models_dir=MODELS, taxonomy=TAXONOMY)
    for path in sorted(PHOTOS.glob("*.jpg"))[:40]:
        if len(detector(cv2.imread(str(path)))) >= 1:
            shutil.copy(path, root / "photos" / path.name)
            return f"photos/{path.name}"
    pytest.skip("the current model finds nothing on the first 40 training photos")


def pull_environment(monkeypatch: pytest.MonkeyPatch, ls: LabelStudio, annotations: Path, root: Path) -> None:
    """The environment `streetorder data pull` reads (this Label Studio, the annotations folder and,
    as the service's, the files root its photos are checked under), read anew by the CLI."""
    for name, value in {
        "STREETORDER_LABELSTUDIO_URL": ls.url,
        "STREETORDER_LABELSTUDIO_TOKEN": ls.token,
        "STREETORDER_ANNOTATIONS_DIR": str(annotations),
        "STREETORDER_LABELSTUDIO_FILES_ROOT": str(root),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def results(ls: LabelStudio, path: str, **params: Any) -> list[dict[str, Any]]:
    body = ls.call("GET", path, **params)
    return list(body.get("results", []) if isinstance(body, dict) else body)


def test_the_annotators_loop_against_a_real_label_studio(
    loop: Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ls = loop.ls
    photo = street_photo(loop.root)
    (loop.root.parent / "outside.jpg").write_bytes((loop.root / photo).read_bytes())

    # 1. a project with streetorder's labelling config, and the local storage on a sub-folder
    project = ls.call(
        "POST", "/api/projects", {"title": "street order", "label_config": label_config(taxonomy=TAXONOMY)}
    )
    pid = project["id"]
    with pytest.raises(AnnotationError, match="cannot be the same as LOCAL_FILES_DOCUMENT_ROOT"):
        ls.call("POST", "/api/storages/localfiles", {"project": pid, "path": str(loop.root), "title": "root"})
    ls.call(
        "POST",
        "/api/storages/localfiles",
        {"project": pid, "path": str(loop.root / "photos"), "title": "photos", "use_blob_urls": True},
    )
    imported = ls.call(
        "POST",
        f"/api/projects/{pid}/import?return_task_ids=true",
        [
            {"data": {"image": f"/data/local-files/?d={photo}"}},
            {"data": {"image": "/data/local-files/?d=../outside.jpg"}},  # leaves the allowed folder
        ],
    )
    good, bad = imported["task_ids"]

    # 2. the ML backend: Label Studio calls /health and /setup and says connected
    backend = ls.call(
        "POST",
        "/api/ml",
        {
            "project": pid,
            "url": loop.backend,
            "title": "streetorder",
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "labelstudio",
            "basic_auth_pass": loop.key,
            "is_interactive": False,
        },
    )
    backend = ls.call("GET", f"/api/ml/{backend['id']}")
    assert backend["state"] == "CO", backend.get("error_message")  # CONNECTED
    version = backend["model_version"]
    assert version == loop.model_version

    # 3. pre-annotations: the good task gets the model's boxes, the bad one an empty prediction
    ls.call(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        {"selectedItems": {"all": True, "excluded": []}},
    )
    [prediction] = results(ls, "/api/predictions", task=good)
    assert prediction["model_version"] == version and prediction["result"]
    names = {n for region in prediction["result"] for n in region["value"]["rectanglelabels"]}
    assert names <= set(TAXONOMY.names)
    assert all(region["value"]["rotation"] == 0 for region in prediction["result"])
    assert [p["result"] for p in results(ls, "/api/predictions", task=bad)] in ([], [[]])

    # 4. an annotation submitted before the webhook has its key: answered 401, lost to the webhook
    [hook] = [h for h in ls.call("GET", "/api/webhooks", project=pid) if h["url"].startswith(loop.backend)]
    stall = {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": prediction["result"][0]["original_width"],
        "original_height": prediction["result"][0]["original_height"],
        "value": {"x": 5, "y": 5, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": ["stall"]},
    }
    annotation = ls.call(
        "POST",
        f"/api/tasks/{good}/annotations",
        {"result": [*prediction["result"], stall], "was_cancelled": False},
    )
    time.sleep(2)
    assert pending_annotations(loop.settings.annotations_dir) == []

    # ... `streetorder data pull` brings it
    pull_environment(monkeypatch, ls, loop.settings.annotations_dir, loop.root)
    try:
        assert main(["data", "pull"]) == 0
        [kept] = pending_annotations(loop.settings.annotations_dir)
        record = json.loads(kept.read_text())
        assert (
            record["annotations"][0]["id"] == annotation["id"]
            and record["label_config"].strip() == label_config(taxonomy=TAXONOMY).strip()
        )

        # 5. the webhook with its key brings an edited annotation; the next pull knows that version
        ls.call("PATCH", f"/api/webhooks/{hook['id']}", {"headers": {"Authorization": f"Token {loop.key}"}})
        edited = [*prediction["result"][:1], stall]
        ls.call("PATCH", f"/api/annotations/{annotation['id']}", {"result": edited})
        wait_until(
            lambda: len(json.loads(kept.read_text())["annotations"][0]["result"]) == 2,
            30,
            "the webhook of the edited annotation",
        )
        received = json.loads((loop.settings.annotations_dir / "received.json").read_text())
        assert received[f"{pid}/{good}"]["via"] == "webhook"
        assert main(["data", "pull"]) == 0
        pulled = json.loads((loop.settings.annotations_dir / "received.json").read_text())
        assert pulled == received  # recognised: nothing recorded twice

        # ... a second annotator skips the task: the annotation kept stays (a skip was recorded over
        # it, and the import found the task unannotated); an annotation deleted in Label Studio
        # leaves the inbox (ANNOTATIONS_DELETED was an unknown event: it stayed to be trained on)
        ls.call("POST", f"/api/tasks/{good}/annotations", {"result": [], "was_cancelled": True})
        [other] = ls.call(
            "POST",
            f"/api/projects/{pid}/import?return_task_ids=true",
            [{"data": {"image": f"/data/local-files/?d={photo}"}}],
        )["task_ids"]
        doomed = ls.call(
            "POST", f"/api/tasks/{other}/annotations", {"result": edited, "was_cancelled": False}
        )
        wait_until(
            lambda: len(pending_annotations(loop.settings.annotations_dir)) == 2, 30, "the second webhook"
        )
        assert json.loads(kept.read_text())["annotations"][0]["id"] == annotation["id"]  # not the skip
        ls.call("DELETE", f"/api/annotations/{doomed['id']}")
        wait_until(lambda: pending_annotations(loop.settings.annotations_dir) == [kept], 30, "the deletion")

        # 6. import: the project's export, labelled exactly as its config offers
        export = tmp_path / "export.json"
        export.write_text(json.dumps(ls.call("GET", f"/api/projects/{pid}/export", exportType="JSON")))
        argv = ["data", "import", str(export), "--dataset", "bureau", "--files-root", str(loop.root)]
        argv += ["--datasets-dir", str(tmp_path / "datasets"), "--store", str(tmp_path / "store")]
        assert main(argv) == 0
    finally:
        get_settings.cache_clear()
    [entry] = Dataset.open("bureau", tmp_path / "datasets").images.values()
    assert entry["labelled"] == TAXONOMY.names  # streetorder's config offers every class, stall too
    assert [label[0] for label in entry["labels"]].count("stall") == 1

    # ... and the inbox, as a retraining job does first
    finder = ImageFinder([], tmp_path / "store", TaskImages(loop.root))
    done = import_inbox(
        loop.settings.annotations_dir,
        "inbox",
        tmp_path / "datasets",
        "job",
        finder,
        datetime.now(UTC),
        load_policy(CONFIGS / CONFIG, TAXONOMY),
    )
    assert done["added"] == 1 and done["problems"] == []

    # 7. "Start training" in Label Studio: a retraining job is queued for `streetorder models retrain`
    ls.call("POST", f"/api/ml/{backend['id']}/train")
    jobs = wait_until(lambda: list_jobs(loop.settings.annotations_dir, "queued"), 30, "a queued job")
    assert str(pid) in " ".join(jobs[0].body["reasons"])


def test_a_pull_refuses_what_the_webhook_refuses_per_task_and_keeps_the_rest(
    labelstudio: tuple[LabelStudio, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Annotations that the webhook answers 422 (rotated, outside the image, a label no class, an
    image out of the files root, on another server or gone) came in by `data pull` all the same and failed
    the retraining job after; now the pull checks each with the webhook's own check, names each
    refused one by task with the webhook's words, keeps the others, and exits 1."""
    from test_labelstudio import HOSTILE_EVENTS, annotation_event, write_photo

    ls, root = labelstudio
    for number in range(1, len(HOSTILE_EVENTS) + 3):  # the photos the events name: a missing one is refused
        write_photo(root / "photos" / f"{number}.jpg")
    project = ls.call(
        "POST", "/api/projects", {"title": "hostile", "label_config": label_config(taxonomy=TAXONOMY)}
    )
    pid = project["id"]
    sent: dict[str, str] = {}  # task id -> what the pull must say of it
    imported = 0
    gone = "/data/local-files/?d=photos/gone.jpg"  # a photo deleted since: a label of no photo
    missing = ("photo gone", lambda e: e["task"]["data"].update(image=gone), "task.data", "no such file")
    cases = [("good", lambda e: None, "", ""), *HOSTILE_EVENTS, missing]
    for number, (case, change, _, why) in enumerate(cases, 1):
        event = annotation_event("ANNOTATION_CREATED", number, number)
        change(event)
        try:  # Label Studio itself refuses some (a task data without an image, a NaN)
            [task] = ls.call(
                "POST", f"/api/projects/{pid}/import?return_task_ids=true", [{"data": event["task"]["data"]}]
            )["task_ids"]
        except AnnotationError:
            continue
        imported += 1
        try:
            ls.call(
                "POST",
                f"/api/tasks/{task}/annotations",
                {"result": event["annotation"]["result"], "was_cancelled": False},
            )
        except AnnotationError:
            continue
        sent[str(task)] = why if case != "good" else ""
    hostile = [task for task, why in sent.items() if why]
    assert len(hostile) >= 6, sent  # rotated, outside, unknown label, another server, out of the root, gone
    annotations_dir = tmp_path / "annotations"
    pull_environment(monkeypatch, ls, annotations_dir, root)
    try:
        assert main(["data", "pull", "--project", str(pid)]) == 1
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    prefix = f"project {pid}: refused: task "
    refused = [line for line in err.splitlines() if line.startswith(prefix)]
    counts = f"{imported} task(s) changed, 1 new annotation(s), 0 already received, {len(refused)} refused"
    assert f"project {pid}: {counts}" in out, (out, err)
    for task in hostile:
        [line] = [line for line in refused if line.startswith((f"{prefix}{task}.", f"{prefix}{task} "))]
        assert sent[task] in line, line
    assert str(root) not in err  # named as sent, never by the server's folder
    [kept] = pending_annotations(annotations_dir)
    good = next(task for task, why in sent.items() if not why)
    assert json.loads(kept.read_text())["id"] == int(good)
    assert set(json.loads((annotations_dir / "received.json").read_text())) == {f"{pid}/{good}"}


def _download(ls: LabelStudio, path: str) -> bytes:
    """A file Label Studio gives (an export's zip), not JSON."""
    request = urllib.request.Request(ls.url + path, headers={"Authorization": f"Token {ls.token}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return bytes(response.read())


def test_a_polygon_project_comes_in_as_boxes_by_pull_and_by_each_export(
    labelstudio: tuple[LabelStudio, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A project whose annotators draw polygons was skipped by the pull ("no <RectangleLabels>
    control"), and its exports imported nothing ("1 image(s) with only unsupported results
    skipped", exit 0). Each polygon is now the box that encloses it, clipped to the photo (the
    second runs to x 110 %), by the pull and from Label Studio's own JSON, YOLO and COCO exports
    (its COCO zip, `result.json` beside `images/`, was "neither data.yaml ... nor annotations/*.json")."""
    from test_labelstudio import POLYGON_CONFIG, _polygon, write_photo

    ls, root = labelstudio
    write_photo(root / "photos" / "polygons.jpg")  # 640x400
    pid = ls.call("POST", "/api/projects", {"title": "polygons", "label_config": POLYGON_CONFIG})["id"]
    image = "/data/local-files/?d=photos/polygons.jpg"
    [task] = ls.call(
        "POST", f"/api/projects/{pid}/import?return_task_ids=true", [{"data": {"image": image}}]
    )["task_ids"]
    result = [_polygon([[10, 20], [40, 25], [35, 60]]), _polygon([[80, 50], [110, 55], [90, 90]])]
    ls.call("POST", f"/api/tasks/{task}/annotations", {"result": result, "was_cancelled": False})
    boxes = [["garbage", 64.0, 80.0, 256.0, 240.0], ["garbage", 512.0, 200.0, 640.0, 360.0]]
    annotations_dir = tmp_path / "annotations"
    pull_environment(monkeypatch, ls, annotations_dir, root)
    exports = {
        "export.json": json.dumps(ls.call("GET", f"/api/projects/{pid}/export", exportType="JSON")).encode(),
        "yolo.zip": _download(ls, f"/api/projects/{pid}/export?exportType=YOLO_WITH_IMAGES"),
        "coco.zip": _download(ls, f"/api/projects/{pid}/export?exportType=COCO_WITH_IMAGES"),
    }
    try:
        assert main(["data", "pull", "--project", str(pid)]) == 0, capsys.readouterr()
        [kept] = pending_annotations(annotations_dir)
        inbox = tmp_path / "inbox.json"  # the inbox's task, as the retraining job imports it
        exports[inbox.name] = json.dumps([json.loads(kept.read_text())]).encode()
        for name, data in exports.items():
            (tmp_path / name).write_bytes(data)
            argv = ["data", "import", str(tmp_path / name), "--dataset", name.replace(".", "-")]
            argv += ["--files-root", str(root), "--datasets-dir", str(tmp_path / "datasets")]
            argv += ["--store", str(tmp_path / "store")]
            assert main([*argv, "--no-holdout-check"]) == 0, (name, capsys.readouterr().err)
            assert "unsupported" not in capsys.readouterr().out, name
            [entry] = Dataset.open(name.replace(".", "-"), tmp_path / "datasets").images.values()
            assert [[n, *(round(v) for v in xyxy)] for n, *xyxy in entry["labels"]] == boxes, name
    finally:
        get_settings.cache_clear()
