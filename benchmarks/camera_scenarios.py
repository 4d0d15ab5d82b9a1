"""A fixed camera's 30 minutes, built from real photos and real crops, through the real model, the
rules and the case intake: when each scenario's case was filed (against its dwell), false cases,
the camera's proposals, and the frames per second one camera costs.

    .venv/bin/python benchmarks/camera_scenarios.py [--shared ../shared] [--model current]
                                                    [--seconds 1800] [--picture docs/camera-scenarios.jpg]

The street is a real traffic-camera frame (traffic-cams `D0.jpg`, a road with tree shadows and a
median), scaled to 1280x720; real cars cut from vehicles-in and real garbage piles cut from
garbage-cn are pasted onto it (feathered edges), the light falls to 65 % over the run (clouds,
evening), every frame has sensor noise and a random shake of up to 3 px, and a car drives through
every 45 s. Each frame is encoded as JPEG and goes the way of `POST /v1/cameras/{id}/frames`:
decode, the model, `CameraHub.process` (tracking, zones, dwell clocks, occupancy, incidents) and
the case intake on a fresh SQLite database, at 1 frame per second of capture time.

The camera (zones in the script) has the shipped defaults (clear 120 s, `verify: after_handled`,
the background learned from 10 minutes of samples) with a 300 s dwell on every rule. Scenarios,
with their truth (seconds from the start):

- cold start: a garbage pile stands in the dumping zone from the first frame to 400 s: never a
  case (it is part of the background the camera learns), and no ghost of it when it goes;
- taxi: a car parks in the no-parking strip 60-470 s (410 s): one case at about 360 s; the check
  desk reports it handled at 420 s, so the camera proposes check-pass once it has gone;
- return: the same car parks there again 700-900 s: one rework proposal (check_fail), not two;
- stop: a car stops 150-210 s: no case;
- another car: a grey car 300-500 s, then a silver SUV at the same place 530-1100 s: one case, at
  the SUV's own 300 s (about 830 s), not 300 s after the grey car came;
- stall: a pile of goods (a real garbage-cn crop standing in for a ground stall) on the roadside
  700-1300 s: one class-free (occupancy) case at about 1000 s;
- pile: a garbage pile in the dumping zone 900-1500 s: one case at about 1200 s;
- restart: at 1150 s the hub is dropped without saving (the service killed) and a new one starts
  from what the database holds (saved at the last event or minute), in the middle of the stall's
  case and of the pile's dwell: nothing filed twice, no ghost;
- drive-throughs: every 45 s a car crosses the roadside zone: never a case.

Printed: per scenario the cases filed (time, delay after the expected time; "joined" when the
intake merged the finding into the camera's open case of that class, all of a camera's findings
being within its 50 m), false cases and the proposals; then the time per frame by stage and the
frames per second of one camera. With --picture (.jpg or .png), a timeline of the run (truth,
due and filed cases, proposals) under a frame of it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.cases.cameras import CameraHub, Timings  # noqa: E402
from serve.cases.db import open_database, transaction  # noqa: E402
from serve.cases.domain import load_domain  # noqa: E402
from serve.cases.enums import Action, EvidenceRole  # noqa: E402
from serve.cases.orm import Case, Evidence  # noqa: E402
from serve.cases.settings import Settings  # noqa: E402
from serve.cases.workflow import Command, apply  # noqa: E402
from vision.core.imageio import decode_photo  # noqa: E402
from vision.core.taxonomy import Taxonomy  # noqa: E402
from vision.detect.backends import load_detector  # noqa: E402
from vision.live.cameras import CameraRegistry, parse_cameras  # noqa: E402
from vision.live.zones import pixel_polygon  # noqa: E402

T0 = datetime(2026, 5, 6, 1, 0, tzinfo=UTC)  # 09:00 in Zhengzhou
SIZE = (1280, 720)
DWELL_S = 300
Box = tuple[int, int, int, int]

ZONES = {  # normalised polygons
    "no-parking": [[0.02, 0.45], [0.45, 0.45], [0.45, 0.86], [0.02, 0.86]],
    "roadside": [[0.45, 0.55], [0.62, 0.55], [0.62, 0.86], [0.45, 0.86]],
    "median": [[0.66, 0.55], [0.95, 0.55], [0.95, 0.85], [0.66, 0.85]],
}
TAXI: Box = (60, 420, 240, 550)
STOP: Box = (330, 300, 480, 410)
SPOT: Box = (320, 460, 520, 600)  # the grey car's, then the SUV's
STALL: Box = (610, 470, 760, 580)
PILE: Box = (900, 470, 1070, 590)
OLD_PILE: Box = (1060, 420, 1190, 520)
RESTART_AT = 1150.0
HANDLED_AT = 420.0  # the check desk reports the taxi's case handled


# when each thing stands there (seconds from the start)
OLD_PILE_AT = (0.0, 400.0)
TAXI_AT, TAXI_AGAIN_AT = (60.0, 470.0), (700.0, 900.0)
STOP_AT = (150.0, 210.0)
GREY_AT, SUV_AT = (300.0, 500.0), (530.0, 1100.0)
STALL_AT = (700.0, 1300.0)
PILE_AT = (900.0, 1500.0)
DRIVE_EVERY_S, DRIVE_S = 45, 8


@dataclass
class Scenario:
    name: str
    zone: str
    box: Box | None  # where it stands (None: anywhere in the zone)
    present: list[tuple[float, float]]  # the truth
    window: tuple[float, float]  # when a case of it may be filed
    expected: float | None  # when its case is due (None: no case)
    filed: list[tuple[float, bool]] = field(default_factory=list)  # (when, a new case: else it joined one)
    proposals: list[tuple[float, str]] = field(default_factory=list)


def scenarios(seconds: float) -> list[Scenario]:
    drives = [(float(t), float(t + DRIVE_S)) for t in range(0, int(seconds), DRIVE_EVERY_S)]
    due = DWELL_S + 1  # a new track has its id from its second frame
    return [
        Scenario(
            "cold start: a pile there from the first frame", "median", OLD_PILE, [OLD_PILE_AT], (0, 900), None
        ),
        Scenario("taxi parks 410 s", "no-parking", TAXI, [TAXI_AT], (0, 690), TAXI_AT[0] + due),
        Scenario("the taxi returns", "no-parking", TAXI, [TAXI_AGAIN_AT], (690, seconds), None),
        Scenario("a car stops 60 s", "no-parking", STOP, [STOP_AT], (0, seconds), None),
        Scenario(
            "grey car, then an SUV at its place",
            "no-parking",
            SPOT,
            [GREY_AT, SUV_AT],
            (0, seconds),
            SUV_AT[0] + due,
        ),
        Scenario(
            "stall stand-in on the roadside",
            "roadside",
            STALL,
            [STALL_AT],
            (0, seconds),
            STALL_AT[0] + DWELL_S,
        ),
        Scenario(
            "garbage pile, restart in its dwell",
            "median",
            PILE,
            [PILE_AT],
            (900, seconds),
            PILE_AT[0] + DWELL_S,
        ),
        Scenario("drive-throughs, a car every 45 s", "roadside", None, drives, (0, seconds), None),
    ]


def within(t: float, span: tuple[float, float]) -> bool:
    return span[0] <= t < span[1]


def registry(taxonomy: Taxonomy) -> CameraRegistry:
    return parse_cameras(
        {
            "rules": {
                "no_parking": {
                    "detect": "objects",
                    "classes": ["car", "bus", "truck"],
                    "min_dwell_s": DWELL_S,
                },
                "stalls": {
                    "detect": "occupancy",
                    "event": "street_vending",
                    "min_area": 0.04,
                    "min_dwell_s": DWELL_S,
                },
                "dumping": {
                    "detect": "occupancy",
                    "event": "piled_materials",
                    "class_events": {"garbage": "exposed_garbage"},
                    "min_area": 0.04,
                    "min_dwell_s": DWELL_S,
                },
            },
            "cameras": [
                {
                    "id": "bench-cam",
                    "lat": 34.72265,
                    "lon": 113.62762,
                    "analyse_fps": 1,
                    "zones": [
                        {"id": "no-parking", "rule": "no_parking", "polygon": ZONES["no-parking"]},
                        {"id": "roadside", "rule": "stalls", "polygon": ZONES["roadside"]},
                        {"id": "median", "rule": "dumping", "polygon": ZONES["median"]},
                    ],
                }
            ],
        },
        taxonomy,
    )


# ------------------------------------------------------------------------------------ the footage


def labelled_crops(folder: Path, class_id: int, min_px: int) -> list[np.ndarray]:
    """Boxes of one class cut out of a YOLO-labelled set (images/<split>, labels/<split>)."""
    found = []
    for path in sorted((folder / "images").glob("*/*.jpg")):
        label = folder / "labels" / path.parent.name / f"{path.stem}.txt"
        if not label.exists():
            continue
        image = cv2.imread(str(path))
        if image is None:
            continue
        height, width = image.shape[:2]
        for row in label.read_text().splitlines():
            values = row.split()
            if len(values) < 5 or int(values[0]) != class_id:
                continue
            cx, cy, w, h = (float(v) for v in values[1:5])
            if min(w * width, h * height) < min_px:
                continue
            x1, y1 = int((cx - w / 2) * width), int((cy - h / 2) * height)
            found.append(image[max(0, y1) : y1 + int(h * height), max(0, x1) : x1 + int(w * width)].copy())
    return found


def paste(frame: np.ndarray, crop: np.ndarray, box: Box) -> None:
    """`crop` scaled into `box` with a feathered edge (no hard seam), clipped to the frame."""
    x1, y1, x2, y2 = box
    part = cv2.resize(crop, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA).astype(np.float32)
    edge = np.zeros(part.shape[:2], np.float32)
    cv2.rectangle(edge, (3, 3), (part.shape[1] - 4, part.shape[0] - 4), 1.0, -1)
    alpha = cv2.GaussianBlur(edge, (7, 7), 0)[..., None]
    left, top = max(0, x1), max(0, y1)
    right, bottom = min(frame.shape[1], x2), min(frame.shape[0], y2)
    if right <= left or bottom <= top:
        return
    window = (slice(top, bottom), slice(left, right))
    inner = (slice(top - y1, bottom - y1), slice(left - x1, right - x1))
    frame[window] = (alpha[inner] * part[inner] + (1 - alpha[inner]) * frame[window]).astype(np.uint8)


@dataclass
class Street:
    background: np.ndarray
    cars: list[np.ndarray]  # vehicles-in cars: the taxi, the stopping car, the drive-throughs
    grey_car: np.ndarray
    suv: np.ndarray
    piles: list[np.ndarray]  # garbage-cn piles: the old pile, the stall stand-in, the new pile
    seconds: float
    noise: list[np.ndarray] = field(default_factory=list)  # sensor noise, drawn once: it costs

    def __post_init__(self) -> None:
        rng = np.random.default_rng(1)
        self.noise = [rng.normal(0, 3, (SIZE[1], SIZE[0], 3)).astype(np.int16) for _ in range(16)]

    def frame(self, t: float, rng: np.random.Generator) -> np.ndarray:
        image = self.background.copy()
        placed = [
            (OLD_PILE_AT, self.piles[0], OLD_PILE),
            (STALL_AT, self.piles[1], STALL),
            (PILE_AT, self.piles[2], PILE),
            (TAXI_AT, self.cars[0], TAXI),
            (TAXI_AGAIN_AT, self.cars[0], TAXI),
            (STOP_AT, self.cars[1], STOP),
            (GREY_AT, self.grey_car, SPOT),
            (SUV_AT, self.suv, SPOT),
        ]
        for span, crop, box in placed:
            if within(t, span):
                paste(image, crop, box)
        phase = t % DRIVE_EVERY_S  # a car drives up the roadside zone
        if phase < DRIVE_S:
            y = int(720 - phase * 720 / DRIVE_S)
            driver = self.cars[2 + int(t // DRIVE_EVERY_S) % (len(self.cars) - 2)]
            paste(image, driver, (610, y - 110, 760, y))
        light = 1.0 - 0.35 * t / self.seconds
        shake = np.float32([[1, 0, rng.integers(-3, 4)], [0, 1, rng.integers(-3, 4)]])
        image = cv2.warpAffine(image, shake, SIZE, borderMode=cv2.BORDER_REPLICATE)
        noise = self.noise[int(rng.integers(len(self.noise)))]
        return cv2.add(cv2.convertScaleAbs(image, alpha=light), noise, dtype=cv2.CV_8U)


def load_street(shared: Path, seconds: float) -> Street:
    datasets = shared / "datasets"
    background = cv2.imread(str(datasets / "traffic-cams" / "images" / "val" / "D0.jpg"))
    if background is None:
        raise SystemExit(f"no traffic-cams frame D0.jpg under {datasets}")
    cars = labelled_crops(datasets / "vehicles-in", 2, 80)  # vehicles-in class 2: car
    piles = labelled_crops(datasets / "garbage-cn", 0, 90)  # garbage-cn class 0: garbage
    if len(cars) < 120 or len(piles) < 3:
        raise SystemExit(f"too few car or garbage crops under {datasets}")
    # the grey car and the silver SUV of tests/test_dwell.py; a red car for the taxi
    return Street(
        background=cv2.resize(background, SIZE, interpolation=cv2.INTER_CUBIC),
        cars=[cars[22], cars[57], cars[5], cars[18], cars[90], cars[93], cars[66]],
        grey_car=cars[10],
        suv=cars[26],
        piles=[piles[3], piles[11], piles[25]],
        seconds=seconds,
    )


# ------------------------------------------------------------------------------------- the run


@dataclass
class Stopwatch:
    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def time(self, stage: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        self.wall[stage] += time.perf_counter() - wall
        self.cpu[stage] += time.process_time() - cpu
        return result


STAGES = ("decode", "inference", "rules and cases")


def handle(sessions: Any, domain: Any, case_id: int, at: datetime) -> None:
    """The check desk works the case to `handled` (the handler's own after-photo attached)."""
    with transaction(sessions) as session:
        case = session.get(Case, case_id)
        assert case is not None
        photo = Evidence(
            case=case, role=EvidenceRole.AFTER, path="handler.jpg", sha256="0" * 64, captured_at=at, boxes=[]
        )
        session.add(photo)
        session.flush()
        steps = [(Action.CONFIRM, {}), (Action.FILE, {}), (Action.DISPATCH, {"department": "城管执法中队"})]
        steps += [(Action.START, {}), (Action.HANDLE, {"evidence_id": photo.id})]
        for action, fields in steps:
            apply(
                case,
                Command(action=action, operator="desk", at=at, **fields),
                limits=domain.stage_limits,
                deadline_from=domain.deadline_from,
                extend_deadline=domain.extend_deadline,
                event_fields=domain.event_fields,
            )


def overlap(a: np.ndarray, b: Box) -> float:
    return float(sv.box_iou_batch(a[None], np.array([b], dtype=np.float64))[0, 0])


def attribute(cases: list[Scenario], zone: str, box: np.ndarray, t: float) -> Scenario | None:
    """The scenario a case belongs to: same zone, inside its time window, best overlap."""
    fitting = [s for s in cases if s.zone == zone and s.window[0] <= t < s.window[1]]
    placed = [(overlap(box, s.box), s) for s in fitting if s.box is not None]
    best = max(placed, key=lambda pair: pair[0], default=(0.0, None))
    if best[1] is not None and best[0] >= 0.2:
        return best[1]
    return next((s for s in fitting if s.box is None), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--model", default="current")
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--picture", type=Path, help="write the run's timeline here (.jpg, .png)")
    args = parser.parse_args(argv)

    street = load_street(args.shared, args.seconds)
    scratch = tempfile.TemporaryDirectory(prefix="camera-scenarios-")
    folder = Path(scratch.name)
    settings = Settings(
        db_url=f"sqlite:///{folder / 'cases.db'}", evidence_dir=folder / "evidence", secret="x" * 32
    )
    sessions = open_database(settings.db_url)
    domain = load_domain(settings)
    detector = load_detector(args.model, models_dir=settings.models_dir, taxonomy=domain.rules.taxonomy)
    hub = CameraHub(registry(domain.rules.taxonomy), domain.rules.taxonomy, settings.evidence_dir)
    truth = scenarios(args.seconds)
    false_cases: list[tuple[float, str]] = []
    watch = Stopwatch()
    rng = np.random.default_rng(0)
    taxi_case: int | None = None
    snapshot: np.ndarray | None = None
    frames = int(args.seconds)
    for step in tqdm(range(frames), desc="frames", unit="frame"):
        t = float(step)
        if t == RESTART_AT:  # the service killed and started again: a new hub from the database
            hub = CameraHub(registry(domain.rules.taxonomy), domain.rules.taxonomy, settings.evidence_dir)
            hub.restore(sessions)
        if t == HANDLED_AT and taxi_case is not None:
            handle(sessions, domain, taxi_case, T0 + timedelta(seconds=t))
        ok, jpeg = cv2.imencode(".jpg", street.frame(t, rng), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        photo = watch.time("decode", decode_photo, jpeg.tobytes())
        detections = watch.time("inference", detector, photo.image)
        result = watch.time(
            "rules and cases",
            hub.process,
            "bench-cam",
            photo.image,
            T0 + timedelta(seconds=t),
            detections,
            sessions=sessions,
            case_rules=domain.rules,
            model_version=detector.version,
            timings=Timings(),
        )
        if step == min(1000, frames - 1):  # stall, pile and SUV in view
            snapshot = photo.image
        for event, action in zip(result.outcome.events, result.actions, strict=True):
            scenario = attribute(truth, action.zone_id, event.incident.box, t)
            if action.kind == "started":  # a new case, or a finding joining an open one (intake: 50 m)
                if scenario is None or scenario.expected is None:
                    false_cases.append((t, f"{action.zone_id} {action.event}"))
                if scenario is not None:
                    scenario.filed.append((t, action.created))
                    if scenario.box == TAXI and taxi_case is None:
                        taxi_case = action.case_id
            elif scenario is not None and action.kind in ("cleared", "rework"):
                scenario.proposals.append((t, action.proposal or f"{action.kind} ({action.reason})"))
    report(truth, false_cases, watch, frames, detector.version)
    if args.picture is not None and snapshot is not None:
        picture(args.picture, truth, false_cases, snapshot, args.seconds)
        print(f"timeline: {args.picture}")
    scratch.cleanup()
    return 0


def report(
    truth: list[Scenario], false_cases: list[tuple[float, str]], watch: Stopwatch, frames: int, model: str
) -> None:
    print(f"\n{frames} frames of 1280x720 at 1 fps ({frames / 60:.0f} min), model {model}, dwell {DWELL_S} s")
    print(f"{'scenario':<48} {'due':>6} {'filed':>14} {'delay':>7}  proposals")
    for s in truth:
        due = "none" if s.expected is None else f"{s.expected:.0f}"
        filed = ", ".join(f"{t:.0f}" + ("" if new else " (joined)") for t, new in s.filed) or "none"
        delay = f"{s.filed[0][0] - s.expected:+.0f} s" if s.filed and s.expected is not None else ""
        proposals = ", ".join(f"{kind}@{t:.0f}" for t, kind in s.proposals) or "-"
        print(f"{s.name:<48} {due:>6} {filed:>14} {delay:>7}  {proposals}")
    expected = [s for s in truth if s.expected is not None]
    print(
        f"cases due {len(expected)}, filed on time {sum(len(s.filed) == 1 for s in expected)}, "
        f"false cases {len(false_cases)}" + (f": {false_cases}" if false_cases else "")
    )
    total_wall = sum(watch.wall.values()) / frames
    total_cpu = sum(watch.cpu.values()) / frames
    print(f"\n{'stage':<16} {'wall ms':>8} {'CPU ms':>8}   (per frame; CPU counts every thread)")
    for stage in STAGES:
        print(f"{stage:<16} {1000 * watch.wall[stage] / frames:8.1f} {1000 * watch.cpu[stage] / frames:8.1f}")
    print(f"{'total':<16} {1000 * total_wall:8.1f} {1000 * total_cpu:8.1f}")
    print(
        f"one camera: {1 / total_wall:.1f} frames/s (wall, sequential); a 2-core machine: "
        f"{2 / total_cpu:.1f} frames/s in all, {2 / total_cpu:.0f} cameras at 1 fps, "
        f"{1 / total_cpu:.0f} at 2 fps (CPU-bound)"
    )


def picture(
    path: Path, truth: list[Scenario], false_cases: list[tuple[float, str]], frame: np.ndarray, seconds: float
) -> None:
    """A frame of the run with its zones and places, over a timeline: truth bars, the due time
    (white tick), the cases filed (green dots, red crosses when false) and the proposals."""
    width = 1280
    scene = frame.copy()
    for zone, polygon in ZONES.items():
        points = pixel_polygon([tuple(p) for p in polygon], SIZE).astype(np.int32)
        cv2.polylines(scene, [points], True, (0, 220, 255), 2)
        cv2.putText(scene, zone, tuple(points[0] + [6, 24]), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 220, 255), 2)
    for name, box in (
        ("taxi", TAXI),
        ("stop", STOP),
        ("grey car / SUV", SPOT),
        ("stall", STALL),
        ("pile", PILE),
    ):
        cv2.rectangle(scene, box[:2], box[2:], (255, 255, 255), 1)
        cv2.putText(scene, name, (box[0], box[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    row, left = 44, 470
    chart = np.full((row * (len(truth) + 2), width, 3), 32, np.uint8)
    x_of = lambda t: int(left + (width - left - 20) * t / seconds)  # noqa: E731
    for minute in range(0, int(seconds) + 1, 300):
        cv2.line(chart, (x_of(minute), 0), (x_of(minute), chart.shape[0]), (70, 70, 70), 1)
        cv2.putText(
            chart, f"{minute // 60} min", (x_of(minute) + 3, chart.shape[0] - 12), 0, 0.5, (200,) * 3, 1
        )
    cv2.line(chart, (x_of(RESTART_AT), 0), (x_of(RESTART_AT), chart.shape[0]), (0, 140, 255), 2)
    cv2.rectangle(chart, (x_of(0), 0), (x_of(600), row // 2), (90, 60, 60), -1)
    cv2.putText(chart, "learning the background | restart", (x_of(0) + 4, 16), 0, 0.45, (220,) * 3, 1)
    for index, s in enumerate(truth):
        y = row * (index + 1) + row // 2
        cv2.putText(chart, s.name[:46], (8, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (230,) * 3, 1)
        for start, end in s.present:
            cv2.rectangle(chart, (x_of(start), y - 8), (x_of(end), y + 8), (150, 110, 60), -1)
        if s.expected is not None:
            cv2.line(chart, (x_of(s.expected), y - 14), (x_of(s.expected), y + 14), (255, 255, 255), 2)
        for t, _ in s.filed:
            colour = (80, 220, 80) if s.expected is not None else (60, 60, 255)
            cv2.circle(chart, (x_of(t), y), 7, colour, -1)
        for t, kind in s.proposals:
            cv2.putText(chart, kind.split()[0], (x_of(t) - 10, y - 12), 0, 0.42, (120, 230, 255), 1)
            cv2.circle(chart, (x_of(t), y), 4, (120, 230, 255), -1)
    for t, _ in false_cases:
        cv2.drawMarker(chart, (x_of(t), row // 2 + 8), (60, 60, 255), cv2.MARKER_TILTED_CROSS, 14, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([scene, chart]))


if __name__ == "__main__":
    sys.exit(main())
