"""Label Studio's ML-backend protocol under /labelstudio: annotators start from the model's boxes.

Label Studio calls, with the URL it was given (http://<service>/labelstudio):
- `GET /health` -> `{"status": "UP"}`, `POST /setup` -> `{"model_version"}` when connecting;
- `POST /predict` with `tasks`, `label_config`, `project`, `params` -> `{"results": [one prediction
  per task]}`, each `rectanglelabels` regions in percent of the image, with scores and the model
  version (Label Studio skips tasks that already hold a prediction of that version); a task whose
  image cannot be read or decoded gets an empty prediction and a log line, the others theirs;
- `POST /webhook` with `action`: ANNOTATION_CREATED / UPDATED (and ANNOTATIONS_CREATED, many at
  once: predictions accepted as annotations) keep the task's latest annotation in the inbox with
  the project's labelling config (vision/data/annotations/inbox.py: a version received before, e.g.
  by a pull, is recognised, and an older one delivered late changes nothing); a skipped task's
  cancelled annotation is kept nowhere; ANNOTATIONS_DELETED (Label Studio's, ids only; or
  ANNOTATION_DELETED with the annotation) drops them from the inbox; START_TRAINING (or
  `retrain_after` annotations waiting) queues a retraining job, which `streetorder models retrain`
  runs (vision/modelops/retrain.py); `POST /train` is the older form of START_TRAINING.
  An annotation the import would refuse, its photo missing or no image included, is a 422 and
  nothing is kept (`task_problems`, the check of every door).

Every call, /health included, needs a key with the `annotate` scope. Label Studio's ML-backend
connection sends it as HTTP basic auth on every call (the key as the password), its webhooks as a header
(`Authorization: Token <key>`); Bearer and X-API-Key work too. Task images are read only under
the configured local-files root, or fetched only from the configured Label Studio URL.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.security import APIKeyHeader, SecurityScopes
from pydantic import ConfigDict, Field

from serve.api.deps import DetectorDep, ServiceDep, client_of, header_key, principal_of
from serve.api.routers.detect import Analysis, analyse
from serve.api.schemas import Schema
from serve.cases.auth import Principal
from serve.cases.errors import InvalidInput
from vision.core.boxes import boxes_of
from vision.core.detector import Detector
from vision.core.imageio import ImageError
from vision.core.taxonomy import Taxonomy
from vision.data.annotations.images import STORE, ImageFinder, TaskImages
from vision.data.annotations.inbox import forget_annotations, pending_annotations, record_annotation
from vision.data.annotations.label_config import RectangleControl, rectangle_control
from vision.data.annotations.records import AnnotationError, Label, is_id, lone_surrogate
from vision.data.annotations.validate import task_problems
from vision.data.annotations.writers import prediction
from vision.modelops.retrain import Job, queue_if_due, queue_job

log = logging.getLogger("streetorder.labelstudio")
router = APIRouter(prefix="/labelstudio", tags=["labelstudio"])
MODEL_CLASS = "streetorder"
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETION_EVENTS = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")


def presented_key(authorization: str | None) -> str | None:
    """The key in `Token <key>`, `Bearer <key>` or `Basic base64(user:key)` (Label Studio's
    ML-backend connection only does basic auth: the key is the password, or the user name)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in ("token", "bearer"):
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user or None
    return None


authorization_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    scheme_name="LabelStudioAuthorization",
    description="`Token <key>`, `Bearer <key>`, or `Basic base64(user:key)` (Label Studio's ML-backend auth)",
)


def authenticate_labelstudio(
    security_scopes: SecurityScopes,
    request: Request,
    service: ServiceDep,
    authorization: Annotated[str | None, Depends(authorization_header)],
    api_key: Annotated[str | None, Depends(header_key)],
) -> Principal:
    presented = api_key or presented_key(authorization)
    principal = principal_of(service, presented, security_scopes.scopes, client_of(request))
    request.state.principal = principal  # for the audit log
    return principal


Annotator = Annotated[Principal, Security(authenticate_labelstudio, scopes=["annotate"])]


def task_images(service: ServiceDep) -> TaskImages:
    settings = service.settings
    return TaskImages(
        files_root=settings.labelstudio_files_root,
        base_url=settings.labelstudio_url,
        token=settings.labelstudio_token,
        max_bytes=int(settings.max_upload_mb * 2**20),
    )


TaskImagesDep = Annotated[TaskImages, Depends(task_images)]


def image_finder(service: ServiceDep, images: TaskImagesDep) -> ImageFinder:
    """Finds a task's photo as the retraining job's import will (`streetorder models retrain`:
    no folders but the files root, Label Studio's uploads fetched into the store)."""
    return ImageFinder([], service.settings.cache_dir / STORE, images)


ImageFinderDep = Annotated[ImageFinder, Depends(image_finder)]


# --- schemas: Label Studio's shapes ----------------------------------------------------------------


class LabelStudioBody(Schema):
    model_config = ConfigDict(extra="allow", populate_by_name=True)  # Label Studio adds fields over time


class PredictRequest(LabelStudioBody):
    tasks: list[dict[str, Any]] = Field(description="tasks: `id` and `data` holding the image URL or path")
    label_config: str | None = Field(default=None, description="the project's labelling config (XML)")
    project: str | int | None = Field(default=None, description="project: `<id>.<created_at timestamp>`")
    params: dict[str, Any] | None = Field(default=None, description="login, password, context (not used)")


class PredictionOut(Schema):
    result: list[dict[str, Any]] = Field(
        description="rectanglelabels regions: value.x, y, width, height in percent of the image, "
        "value.rectanglelabels, score, original_width and original_height in pixels"
    )
    score: float = Field(description="mean score of the task's boxes (Label Studio sorts tasks by it)")
    model_version: str = Field(description="model that predicted: <name>@<sha256 prefix of its weights>")


class PredictResponse(Schema):
    results: list[PredictionOut] = Field(
        description="one prediction per task, in the tasks' order (empty for a task whose image "
        "cannot be read or decoded)"
    )
    model_version: str = Field(description="model that predicted")


class SetupRequest(LabelStudioBody):
    project: str | int | None = Field(default=None, description="project: `<id>.<created_at timestamp>`")
    label_config: str | None = Field(default=None, alias="schema", description="the labelling config (XML)")
    hostname: str | None = Field(default=None, description="Label Studio's URL (not trusted for fetching)")
    access_token: str | None = Field(default=None, description="a Label Studio user token (not used)")
    extra_params: dict[str, Any] | None = Field(default=None, description="extra parameters (not used)")


class SetupResponse(Schema):
    model_version: str = Field(description="model that will predict")


class BackendHealth(Schema):
    status: str = Field(description="UP when a model is loaded, DOWN otherwise")
    model_class: str = Field(description="the backend's name")
    model_version: str | None = Field(description="loaded model, or null")


class VersionsResponse(Schema):
    versions: list[str] = Field(description="model versions this backend can predict with (the current one)")


class WebhookRequest(LabelStudioBody):
    action: str = Field(
        description="ANNOTATION_CREATED, ANNOTATION_UPDATED, ANNOTATIONS_CREATED, ANNOTATIONS_DELETED, "
        "START_TRAINING, ..."
    )
    project: dict[str, Any] | None = Field(
        default=None, description="the project (`id`, `label_config`, ...)"
    )
    task: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="the task (`id`, `data`); a list for ANNOTATIONS_CREATED"
    )
    annotation: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None,
        description="the annotation (`id`, `task`, `result`, `was_cancelled`, `updated_at`, ...); "
        "a list for ANNOTATIONS_CREATED",
    )
    annotations: list[dict[str, Any]] | None = Field(
        default=None, description="ANNOTATIONS_DELETED: the deleted annotations' `id`s"
    )


class WebhookResponse(Schema):
    status: str = Field(description="ok, or `Unknown event` for actions that do nothing here")
    recorded: bool | None = Field(
        default=None, description="false when this version of the annotation was received before (a pull)"
    )
    pending_annotations: int | None = Field(default=None, description="annotations waiting for retraining")
    job: str | None = Field(default=None, description="id of the queued retraining job, if one is queued")


class TrainRequest(LabelStudioBody):
    annotations: list[dict[str, Any]] = Field(description="tasks with their annotations (Label Studio JSON)")
    project: str | int | dict[str, Any] | None = Field(default=None, description="project id or object")
    label_config: str | None = Field(default=None, description="the project's labelling config (XML)")


class TrainResponse(Schema):
    job: str = Field(description="id of the queued retraining job")


# --- routes ------------------------------------------------------------------------------------------


@router.get(
    "/health", response_model=BackendHealth, summary="Backend health for Label Studio (scope annotate)"
)
def labelstudio_health(_: Annotator, service: ServiceDep, response: Response) -> BackendHealth:
    detector = service.detector
    if detector is None:
        response.status_code = 503
    return BackendHealth(
        status="UP" if detector else "DOWN",
        model_class=MODEL_CLASS,
        model_version=detector.version if detector else None,
    )


@router.post(
    "/setup", response_model=SetupResponse, summary="Connect a Label Studio project (scope annotate)"
)
def labelstudio_setup(
    body: SetupRequest, _: Annotator, detector: DetectorDep, service: ServiceDep
) -> SetupResponse:
    control(body.label_config, service.domain.rules.taxonomy)  # refuse a config with no known label now
    return SetupResponse(model_version=detector.version)


@router.get("/versions", response_model=VersionsResponse, summary="Model versions (scope annotate)")
def labelstudio_versions(_: Annotator, detector: DetectorDep) -> VersionsResponse:
    return VersionsResponse(versions=[detector.version])


@router.post("/predict", response_model=PredictResponse, summary="Pre-annotate tasks (scope annotate)")
async def labelstudio_predict(
    body: PredictRequest, _: Annotator, detector: DetectorDep, service: ServiceDep, images: TaskImagesDep
) -> PredictResponse:
    """One prediction per task, in order: a task whose image cannot be read or decoded gets an
    empty one (and a log line naming it), so one bad task never costs the others theirs."""
    taxonomy = service.domain.rules.taxonomy
    rectangles = control(body.label_config, taxonomy)
    tz = service.domain.rules.calendar.timezone
    names = {"from_name": rectangles.from_name, "to_name": rectangles.to_name}
    results = []
    for index, task in enumerate(body.tasks):
        where = f"tasks[{index}]" + (f" (id {task.get('id')})" if "id" in task else "")
        try:
            ref = task_image(task, rectangles.data_key, where)
            min_side = service.settings.min_photo_side  # a tiny image: no boxes, an empty prediction
            analysis = await service.gate.run(read_and_detect, detector, images, ref, tz, min_side)
        except (AnnotationError, ImageError) as err:
            log.warning(
                "labelstudio predict, project %s, %s: %s (empty prediction)", body.project, where, err
            )
            results.append(PredictionOut(**prediction([], 0, 0, detector.version, **names)))
            continue
        service.metrics.inference.observe(analysis.inference_s)
        labels = predicted_labels(analysis, taxonomy, rectangles)
        results.append(
            PredictionOut(
                **prediction(labels, analysis.photo.width, analysis.photo.height, detector.version, **names)
            )
        )
    return PredictResponse(results=results, model_version=detector.version)


@router.post(
    "/webhook", response_model=WebhookResponse, status_code=201, summary="Annotation events (scope annotate)"
)
def labelstudio_webhook(
    body: WebhookRequest, _: Annotator, service: ServiceDep, images: ImageFinderDep, response: Response
) -> WebhookResponse:
    folder = service.settings.annotations_dir
    project = (body.project or {}).get("id")
    recorded = None
    if body.action in ANNOTATION_EVENTS:
        if not is_id(project):
            raise InvalidInput("project.id", f"{body.action} needs the project it belongs to")
        all_text({"project": body.project, "task": body.task, "annotation": body.annotation})
        config = (body.project or {}).get("label_config")
        recorded = False
        for task, annotation in annotated_tasks(body, service.domain.rules.taxonomy, images):
            if annotation.get("was_cancelled"):  # a skipped task: the annotation kept before stays
                forget_annotations(folder, project, [annotation.get("id")])  # unless it is this one
                continue
            recorded = (
                record_annotation(
                    folder,
                    project,
                    task,
                    annotation,
                    label_config=config if isinstance(config, str) else None,
                )
                or recorded
            )
    elif body.action in DELETION_EVENTS:
        deleted = body.annotations or ([body.annotation] if isinstance(body.annotation, dict) else [])
        forget_annotations(folder, project, [a.get("id") for a in deleted])
    elif body.action != "START_TRAINING":
        response.status_code = 200
        return WebhookResponse(status="Unknown event")
    job: Job | None
    if body.action == "START_TRAINING":
        pending = len(pending_annotations(folder))
        job = queue_job(
            folder, f"START_TRAINING from Label Studio project {project}", service.clock(), project=project
        )
    else:
        due = service.settings.retrain_after if recorded else 0  # a repeat queues nothing
        pending, job = queue_if_due(folder, due, service.clock(), project)
    return WebhookResponse(
        status="ok", recorded=recorded, pending_annotations=pending, job=job.id if job else None
    )


@router.post(
    "/train", response_model=TrainResponse, status_code=201, summary="Queue retraining (scope annotate)"
)
def labelstudio_train(
    body: TrainRequest, _: Annotator, service: ServiceDep, images: ImageFinderDep
) -> TrainResponse:
    """Label Studio without its training webhook sends every annotated task here. Every task is
    checked as the webhook checks its own before any is kept: one bad task in the middle left the
    ones before it in the inbox under a 422, and tasks without an id shared one inbox file."""
    folder = service.settings.annotations_dir
    project = body.project.get("id") if isinstance(body.project, dict) else body.project
    if not is_id(project):
        raise InvalidInput("project", "the project the annotations belong to")
    all_text({"annotations": body.annotations, "label_config": body.label_config, "project": body.project})
    latest = []
    for index, task in enumerate(body.annotations):
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise InvalidInput(f"annotations[{index}].annotations", "a list of annotations")
        kept = [
            (i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        if kept:
            number, annotation = kept[-1]
            checked_pair(
                f"annotations[{index}]",
                task,
                f"annotations[{index}].annotations[{number}]",
                annotation,
                service.domain.rules.taxonomy,
                images,
            )
            latest.append((task, annotation))
        elif not isinstance(task.get("data"), dict):
            raise InvalidInput(f"annotations[{index}].data", "a task needs its data")
    for task, annotation in latest:
        record_annotation(folder, project, task, annotation, label_config=body.label_config, via="train")
    job = queue_job(
        folder, f"train request from Label Studio project {project}", service.clock(), project=project
    )
    return TrainResponse(job=job.id)


# --- helpers ---------------------------------------------------------------------------------------


def annotated_tasks(
    body: WebhookRequest, taxonomy: Taxonomy, images: ImageFinder
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (task, annotation) pairs of an annotation event, each checked: one for ANNOTATION_CREATED
    and UPDATED, many for ANNOTATIONS_CREATED (its annotations name their task by id). A task
    without its id or data, or a result that is not a list, is refused here: kept, it lay in the
    inbox under a made-up name (two tasks without an id shared `None`, the second replacing the
    first) and failed every retraining job after."""
    if isinstance(body.annotation, list):
        tasks = body.task if isinstance(body.task, list) else [body.task] if body.task else []
        by_id = {str(task.get("id")): (f"task[{number}]", task) for number, task in enumerate(tasks)}
        pairs = []
        for index, annotation in enumerate(body.annotation):
            task_at, task = by_id.get(str(annotation.get("task")), ("", None))
            if task is None:
                raise InvalidInput(f"annotation[{index}].task", "names none of the tasks sent with it")
            pairs.append((task_at, task, f"annotation[{index}]", annotation))
    elif isinstance(body.task, dict) and isinstance(body.annotation, dict):
        pairs = [("task", body.task, "annotation", body.annotation)]
    else:
        field = "annotation" if isinstance(body.task, dict) else "task"
        raise InvalidInput(field, f"{body.action} needs one task and its annotation")
    for task_at, task, where, annotation in pairs:
        checked_pair(task_at, task, where, annotation, taxonomy, images)
    return [(task, annotation) for _, task, _, annotation in pairs]


def checked_pair(
    task_at: str,
    task: dict[str, Any],
    where: str,
    annotation: dict[str, Any],
    taxonomy: Taxonomy,
    images: ImageFinder,
) -> None:
    """The pair checked as `data pull` and an import check it (`task_problems`, one function for
    every door), so that its sender hears now what the retraining job would only write in its job
    file: a 422 naming the first problem's field, the others after it."""
    problems = task_problems(task, annotation, taxonomy, images, task_at, where)
    if problems:
        raise InvalidInput(problems[0].where, "; ".join([problems[0].message, *map(str, problems[1:])]))


def all_text(fields: dict[str, Any]) -> None:
    """Refuse text with half a character (a lone `\\ud800` escape) before anything is kept: the
    inbox file's write failed on it, a 500."""
    if (where := lone_surrogate(fields)) is not None:
        raise InvalidInput(where.lstrip("."), "text with half a character (a lone \\uD800-\\uDFFF escape)")


def control(label_config: str | None, taxonomy: Taxonomy) -> RectangleControl:
    try:
        return rectangle_control(label_config, taxonomy)
    except AnnotationError as err:
        raise InvalidInput(err.where, err.message) from None


def task_image(task: dict[str, Any], data_key: str, where: str) -> str:
    data = task.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(data_key), str):
        raise AnnotationError(f"{where}.data.{data_key}", "no image URL or path")
    return str(data[data_key])


def read_and_detect(detector: Detector, images: TaskImages, ref: str, tz: tzinfo, min_side: int) -> Analysis:
    """Read the task's image from where it may be read, decode and detect (a worker thread)."""
    return analyse(detector, images.read(ref), ref, tz, min_side)


def predicted_labels(analysis: Analysis, taxonomy: Taxonomy, rectangles: RectangleControl) -> list[Label]:
    """Boxes at or above their class's min_confidence whose class the project labels, under the
    project's own label names."""
    classes = {c.name: c for c in taxonomy.classes}
    return [
        Label(rectangles.labels[box.class_name], box.xyxy, box.confidence)
        for box in boxes_of(analysis.detections, taxonomy.names)
        if box.class_name in rectangles.labels and box.confidence >= classes[box.class_name].min_confidence
    ]
