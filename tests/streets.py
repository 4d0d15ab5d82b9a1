"""A synthetic fixed-camera street, drawn frame by frame for the occupancy and camera API tests.

A facade with windows above a tiled sidewalk; sensor noise; light drifting linearly (dusk or
morning); three walkers crossing; a car driving along the kerb every 90 s (with the detector box a
real detector would give); optional rain streaks; a stall (red awning and goods) that appears
at a known time and is taken away at another, which a detector may mistake for a car at a low
score; and a car that parks on the sidewalk for a while, seen as a car at a modest score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

W, H = 320, 180
CAR = 3  # taxonomy index
STALL = (130, 115, 185, 160)  # x1 y1 x2 y2 on the sidewalk
PARKED = (200, 120, 270, 165)  # where the parked car stands
STALL_AS_CAR = (0.32, 0.36, 0.40, 0.34, 0.38)  # a stall's scores as a car (issue 28), frame by frame
NOISE = np.random.default_rng(0).normal(0, 3, (16, H, W, 3)).astype(np.float32)  # sensor noise


def street_background(seed: int = 7) -> np.ndarray:
    """A facade with windows above a tiled sidewalk: texture, edges and a few colours."""
    rng = np.random.default_rng(seed)
    image = np.zeros((H, W, 3), dtype=np.float32)
    image[:100] = (150, 160, 170)  # facade
    for x in range(10, W - 20, 40):
        image[20:60, x : x + 22] = (90, 80, 70)  # windows
    image[100:] = (128, 132, 130)  # sidewalk
    image[100:, ::16] -= 25  # tile joints
    image[100::12] -= 25
    image += rng.normal(0, 6, image.shape).astype(np.float32)  # stone texture
    return np.clip(image, 0, 255)


def busy_pavement(seed: int = 3) -> np.ndarray:
    """The street with a coarse, high-contrast pavement (gravel, grass): a ghost of something that
    stood on it has outlines in the frame as strong as in the background, so the ghost test cannot
    tell it from an object."""
    image = street_background()
    blocks = np.random.default_rng(seed).integers(0, 2, (H // 3 + 1, W // 3 + 1)) * 90 - 45
    texture = blocks.repeat(3, axis=0).repeat(3, axis=1)[:H, :W, None]
    image[100:] = np.clip(image[100:] + texture[100:], 0, 255)
    return image


def coloured_tiles(seed: int = 5) -> np.ndarray:
    """The street paved with tiles of many colours (16 x 12 px, as its joints): edges and colours that
    a camera knocked a few pixels aside, or switched to its grey infrared picture, no longer matches."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(60, 200, (H // 12 + 1, W // 16 + 1, 3)).astype(np.float32)
    colours = tiles.repeat(12, axis=0).repeat(16, axis=1)[:H, :W]
    return np.clip(street_background() - 130 + colours, 0, 255)


@dataclass
class Scene:
    seconds: float
    fps: float = 0.5  # a frame every 2 s: enough for the 5 s short-term model, and quick
    stall: tuple[float, float] | None = None  # (appears, removed) seconds
    walkers: bool = True
    cars: bool = True
    rain: bool = False
    light: tuple[float, float] = (1.0, 0.8)  # gain at the start and at the end (linear drift)
    garbage_box: bool = False  # the detector also sees garbage on the stall
    stall_as_car: bool = False  # the detector mistakes the stall for a car at 0.32-0.40
    parked: tuple[float, float] | None = None  # (arrives, leaves) seconds: a car on the sidewalk
    parked_score: float = 0.45
    background: np.ndarray = field(default_factory=lambda: street_background())

    def gain(self, t: float) -> float:
        start, end = self.light
        return start + (end - start) * t / self.seconds

    def frame(self, t: float) -> tuple[np.ndarray, sv.Detections]:
        rng = np.random.default_rng(int(t * 1000) + 1)
        image = NOISE[int(t * 7) % len(NOISE)] + self.background
        boxes: list[tuple[float, float, float, float]] = []
        if self.stall and self.stall[0] <= t < self.stall[1]:
            x1, y1, x2, y2 = STALL
            image[y1:y2, x1:x2] = (40, 60, 200)  # red awning and goods
            image[y1 + 12 : y2, x1 + 4 : x2 - 4 : 8] = (30, 170, 230)
        if self.parked and self.parked[0] <= t < self.parked[1]:
            x1, y1, x2, y2 = PARKED
            image[y1:y2, x1:x2] = (95, 90, 85)  # a grey car
            image[y1 + 8 : y1 + 20, x1 + 10 : x2 - 10] = (60, 55, 50)  # its windows
        if self.walkers:
            for k in range(3):  # three walkers crossing at 1.2 m/s (about 6 px/s here)
                x = (t * 6 + k * 110) % (W + 40) - 20
                cy = 125 + 15 * k
                cv2.ellipse(image, (int(x), cy), (5, 14), 0, 0, 360, (50, 45, 60), -1)
        if self.cars and (t % 90) < 12:  # a car drives along the kerb every 90 s
            x = -80 + (t % 90) * 40
            image[130:170, int(max(x, 0)) : int(max(x + 80, 0))] = (200, 200, 205)
            boxes.append((x, 130, x + 80, 170))
        image *= self.gain(t)
        if self.rain:
            for _ in range(120):
                x, y = rng.integers(0, W), rng.integers(0, H - 12)
                image[y : y + 10, x] += 60
        detections = sv.Detections.empty()
        classes = [CAR] * len(boxes)
        confidences = [0.9] * len(boxes)
        stall = self.stall is not None and self.stall[0] <= t < self.stall[1]
        if self.garbage_box and stall:
            boxes.append(STALL)
            classes.append(0)  # garbage
            confidences.append(0.9)
        if self.stall_as_car and stall:
            boxes.append(STALL)
            classes.append(CAR)
            confidences.append(STALL_AS_CAR[round(t * self.fps) % len(STALL_AS_CAR)])
        if self.parked and self.parked[0] <= t < self.parked[1]:
            boxes.append(PARKED)
            classes.append(CAR)
            confidences.append(self.parked_score)
        if boxes:
            detections = sv.Detections(
                xyxy=np.array(boxes, dtype=np.float64),
                confidence=np.array(confidences),
                class_id=np.array(classes),
            )
        return np.clip(image, 0, 255).astype(np.uint8), detections


def no_signal_screen(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """A recorder's "no signal" screen of the frame's size: one even colour, a line of white text."""
    screen = np.empty_like(frame)
    screen[:] = colour
    height, width = frame.shape[:2]
    scale = width / 400
    cv2.putText(
        screen,
        "NO SIGNAL",
        (int(width * 0.3), height // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        2,
    )
    return screen


# what a camera sends once it lost its picture, made from a frame of the street
NO_PICTURE = {
    "black": np.zeros_like,
    "grey": lambda frame: no_signal_screen(frame, (128, 128, 128)),
    "blue": lambda frame: no_signal_screen(frame, (160, 60, 20)),
    "washed out": lambda frame: (frame.astype(np.float32) * 0.03 + 200).astype(np.uint8),
    "blurred": lambda frame: cv2.GaussianBlur(frame, (0, 0), frame.shape[1] / 40),
}


DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
GREY_CAR = ("IMG-20240615-WA0009_jpg.rf.54074641cb1af758b03ad679d82ae7c4", 1)  # vehicles-in label row


def labelled_crop(stem: str, row: int) -> np.ndarray:
    folder = DATASETS / "vehicles-in"
    image = cv2.imread(str(folder / "images" / "train" / f"{stem}.jpg"))
    labels = (folder / "labels" / "train" / f"{stem}.txt").read_text().split("\n")
    _, cx, cy, w, h = (float(v) for v in labels[row].split()[:5])
    height, width = image.shape[:2]
    x1, y1 = int((cx - w / 2) * width), int((cy - h / 2) * height)
    return image[max(0, y1) : y1 + int(h * height), max(0, x1) : x1 + int(w * width)]


BUS = ("IMG20240615122009_jpg.rf.f416c63d84ebf80f3620e234a69cf959", 0)  # vehicles-in: a coach, side on


def bus_in_front(frame: np.ndarray, share: float = 0.7, offset: int = 0) -> np.ndarray:
    """A real bus close in front of the camera, over the lower `share` of the picture's height (its
    whole width), slid `offset` pixels along as it passes: 0.7 reads as another view on the
    traffic-cams frames (docs/cameras.md, "A view moved")."""
    height, width = frame.shape[:2]
    covered = frame.copy()
    rows = round(share * height)
    covered[height - rows :] = np.roll(cv2.resize(labelled_crop(*BUS), (width, rows)), offset, axis=1)
    return covered


def parked_car_frames() -> tuple[np.ndarray, np.ndarray] | None:
    """A real traffic camera's frame (640x360) with a real grey car pasted at the kerb (the current
    model finds it at 0.73), and the frame without it; None without the datasets."""
    frames = sorted((DATASETS / "traffic-cams" / "images" / "val").glob("*.jpg"))
    if not frames:
        return None
    street = cv2.resize(cv2.imread(str(frames[0])), (640, 360))
    parked = street.copy()
    parked[190:300, 190:330] = cv2.resize(labelled_crop(*GREY_CAR), (140, 110))
    return parked, street
