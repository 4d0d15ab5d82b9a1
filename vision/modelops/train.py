"""`streetorder train`: train a detector on a mix of partially labelled datasets.

Ultralytics does the training; this module adds the two things a mix of partial labels needs:
- the class loss of a class is masked on images whose source does not label it (a car in a
  garbage-cn photo is unlabelled, not background), except on the photos where reviews settled it
  (confirmed absent, or labelled by `real` boxes: vision.data.reviews), and
- mosaic tiles combine images of one source whose labelled classes include all of the main
  image's, so the main image's mask holds for the whole tile.

`--average A.pt B.pt` makes no training run: it writes the mean of the weights of checkpoints
fine-tuned one from another (a "model soup", Wortsman et al. 2022); docs/training.md has what it
measured here.

Importable with only ultralytics, torch and PyYAML, so it runs on a bare GPU host.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from ultralytics import YOLO
from ultralytics.data.augment import Compose, Mosaic
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.torch_utils import unwrap_model

from vision.core.files import file_sha256
from vision.core.taxonomy import Taxonomy, TaxonomyError
from vision.core.yamlfile import read_yaml
from vision.data.datamix import (
    build_mix,
    class_names,
    image_files,
    labelled_classes,
    licence_credits,
    photo_classes,
    photo_key,
    read_data_yaml,
    source_of,
    split_dirs,
)
from vision.detect.errors import ModelError
from vision.detect.weights import inspect_weights
from vision.modelops.checkpoints import load_checkpoint

DATA_CARD_KEYS = (
    "labelled_names",
    "ignored_classes",
    "images",  # each photo once
    "sha256",
    "labels_sha256",
    "oversample",
    "repeats",  # the extra showings `oversample` added
    "reviews",
    "reviews_sha256",
    "reviewed",  # photos per split and class that reviews settled: absent, pseudo-labelled, boxes
    "reviews_stale",  # decisions on photos that changed since: not applied
)


def class_mask(classes: list[int], nc: int) -> torch.Tensor:
    mask = torch.zeros(nc)
    mask[classes] = 1.0
    return mask


class PartialLabelLoss(v8DetectionLoss):
    """Detection loss whose class term counts only the classes an image labels: its source's, or
    for a reviewed photo (`photo_masks`, by `photo_key`) those plus the classes reviews settled."""

    def __init__(
        self,
        model: torch.nn.Module,
        masks: dict[str, torch.Tensor],
        photo_masks: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__(model)
        self.masks = {name: mask.to(self.device).view(1, -1) for name, mask in masks.items()}
        self.photo_masks = {key: m.to(self.device).view(1, -1) for key, m in (photo_masks or {}).items()}
        self.base_weights = self.class_weights  # ultralytics' own class weights, if any
        self.unmasked = torch.ones(1, self.nc, device=self.device)

    def mask_of(self, image_file: str) -> torch.Tensor:
        photo = self.photo_masks.get(photo_key(image_file))
        return photo if photo is not None else self.masks.get(source_of(image_file), self.unmasked)

    def loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        mask = torch.cat([self.mask_of(f) for f in batch["im_file"]])
        weights = mask.unsqueeze(1)  # (batch, 1, classes), broadcast over anchors
        self.class_weights = weights if self.base_weights is None else weights * self.base_weights
        return super().loss(preds, batch)


class SameSourceMosaic(Mosaic):
    """Mosaic that tiles the main image only with images of its source that label every class it
    labels (reviews add classes to single photos). The loss takes the main image's mask for the
    whole mosaic, and each tile labels all of its classes, so that mask is right on every tile; a
    tile's extra classes are masked there, never taught as background."""

    def __init__(
        self, dataset: Any, imgsz: int, p: float, n: int, classes: dict[str, list[int]] | None = None
    ):
        super().__init__(dataset, imgsz=imgsz, p=p, n=n)
        # per image: (source, every class it labels if reviews added some, else none: its source's)
        self.group = {
            f: (source_of(f), frozenset((classes or {}).get(photo_key(f), ()))) for f in dataset.im_files
        }
        self.members: dict[tuple[str, frozenset[int]], list[int]] = defaultdict(list)
        for index, image in enumerate(dataset.im_files):
            self.members[self.group[image]].append(index)
        self.tiles: dict[tuple[str, frozenset[int]], list[int]] = {}
        self.candidates: list[int] = []

    def tiles_for(self, group: tuple[str, frozenset[int]]) -> list[int]:
        """Images of the group's source that label every class the group labels."""
        if group not in self.tiles:
            source, classes = group
            self.tiles[group] = [
                index
                for (other, more), members in self.members.items()
                if other == source
                and classes <= more  # an unreviewed image (none) fits an unreviewed one only
                for index in members
            ]
        return self.tiles[group]

    def get_params(self, labels: dict[str, Any]) -> dict[str, Any]:
        self.candidates = self.tiles_for(self.group[labels["im_file"]])
        return super().get_params(labels)

    def get_indexes(self) -> list[int]:
        return random.choices(self.candidates, k=self.n - 1)


def _swap_mosaic(compose: Compose, dataset: Any, classes: dict[str, list[int]] | None = None) -> None:
    for i, transform in enumerate(compose.transforms):
        if isinstance(transform, Compose):
            _swap_mosaic(transform, dataset, classes)
        elif type(transform) is Mosaic:
            compose.transforms[i] = SameSourceMosaic(
                dataset, transform.imgsz, transform.p, transform.n, classes
            )


class PartialLabelTrainer(DetectionTrainer):
    """DetectionTrainer for mixes: masked class loss and mosaics that keep the mask right."""

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train":
            _swap_mosaic(dataset.transforms, dataset, photo_classes(Path(self.data["path"])))
        return dataset

    def read_results_csv(self) -> dict[str, list[float]]:
        """results.csv as {column: values}, read with the standard library: ultralytics reads it with
        polars, which a torch-only GPU host lacks (and whose wheel would not fit its transfers)."""
        try:
            with open(self.csv, encoding="utf-8", newline="") as stream:
                rows = list(csv.DictReader(stream))
        except OSError:
            return {}
        return {key.strip(): [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}

    def _setup_train(self) -> None:
        super()._setup_train()
        nc = len(self.data["names"])
        mix = Path(self.data["path"])
        masks = {source: class_mask(classes, nc) for source, classes in labelled_classes(mix).items()}
        photos = {key: class_mask(classes, nc) for key, classes in photo_classes(mix).items()}
        model: Any = unwrap_model(cast(torch.nn.Module, self.model))
        model.criterion = PartialLabelLoss(model, masks, photos)


def prepare_data(data: Path, cache_dir: Path, taxonomy: Taxonomy) -> Path:
    """Turn a mix file, or any data.yaml as a mix of one source, into a built mix's data.yaml."""
    spec = read_yaml(data, TaxonomyError)
    if isinstance(spec, dict) and "sources" in spec:
        mix_file, name = data, str(spec.get("name") or data.stem)
    else:
        read_data_yaml(data)  # fails clearly on a broken data file
        name = data.resolve().parent.name
        mix_file = cache_dir / "mixes" / f"{name}.mix.yaml"
        mix_file.parent.mkdir(parents=True, exist_ok=True)
        mix_file.write_text(
            yaml.safe_dump({"name": name, "sources": [{"name": name, "data": str(data.resolve())}]}),
            encoding="utf-8",
        )
    return build_mix(mix_file, cache_dir / "mixes" / name, taxonomy)


def check_val_split(data_yaml: Path, data: Path) -> None:
    """Refuse a mix whose val split holds no photo outside its train split (an empty one, or a
    data.yaml whose `val` names its train folder): best.pt would be the epoch that best fits photos
    it learnt, and the run's figures would read as if on unseen ones."""
    built = read_data_yaml(data_yaml)
    photos = {
        split: {
            image.resolve() for folder in split_dirs(data_yaml, built, split) for image in image_files(folder)
        }
        for split in ("train", "val")
    }
    if not photos["val"] - photos["train"]:
        raise ModelError(
            f"{data}: no val images apart from the train images (the val split is empty or names the "
            "train photos): a run would pick its epoch and report its figures on photos it learnt; "
            "give the set val images first (annotated sets send one new image in 10 to val)"
        )


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def training_card(data_yaml: Path, settings: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The training half of a model card: data, settings, hardware, time, credits (evaluate adds metrics)."""
    sources = json.loads((data_yaml.parent / "sources.json").read_text(encoding="utf-8"))
    return {
        "classes": class_names(read_data_yaml(data_yaml)),  # the mix's: a resumed run keeps its checkpoint's
        "input_size": settings["imgsz"],
        "training": {
            "data": {
                name: {k: info[k] for k in DATA_CARD_KEYS if k in info}  # mixes built before labels_sha256
                for name, info in sources.items()
            },
            "partial_labels": (
                "class loss masked per source, unmasked on photos where reviews settled a class; "
                "mosaics tile images of one source that label every class the main image labels"
            ),
            "settings": settings,
            "hardware": hardware(),
            "seconds": round(seconds),
            "torch": str(torch.__version__),  # a str subclass that safe_dump refuses
        },
        "licences": {
            name: info.get("licence") or licence_credits(Path(info["data"])) for name, info in sources.items()
        },
    }


def write_training_card(run_dir: Path, data_yaml: Path, settings: dict[str, Any], seconds: float) -> Path:
    path = run_dir / "weights" / "card.yaml"
    card = training_card(data_yaml, settings, seconds)
    path.write_text(yaml.safe_dump(card, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def train(
    data: Path,
    taxonomy: Taxonomy,
    cache_dir: Path,
    model: str = "yolo11n.yaml",
    epochs: int = 100,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    hours: float | None = None,
    project: Path = Path("runs"),
    name: str = "train",
    resume: bool = False,
    workers: int = 2,
    seed: int = 0,
    lr0: float | None = None,
    mosaic: float = 1.0,
) -> Path:
    """Train (or resume) and return the run folder; best.pt and card.yaml are in its weights/.

    `lr0` fine-tunes a trained start: AdamW at that rate with no warm-up. Ultralytics' own choice
    (None) warms up from a bias rate of 0.1, which is right from scratch but moves a start that
    already scores well far from where it was before the run learns anything new.

    `mosaic` is the share of training images shown as mosaics. Ultralytics turns mosaics off for
    the last `close_mosaic` (10) epochs, which a run of a few epochs fitted to `hours` never reaches;
    0 gives a short fine-tune those epochs: objects at their own scale, as they are seen at inference.
    """
    started = time.time()
    if resume:
        last = Path(model)
        if last.suffix != ".pt":
            last = project / name / "weights" / "last.pt"
        inspect_weights(last)
        trainer_model = YOLO(str(last))
        trainer_model.train(resume=True, trainer=PartialLabelTrainer)
        trainer = cast(DetectionTrainer, trainer_model.trainer)
        run_dir = Path(trainer.save_dir)
        data_yaml = Path(trainer.args.data)
        settings = {k: getattr(trainer.args, k) for k in ("model", "epochs", "imgsz", "batch")}
    else:
        start = start_weights(
            model, cache_dir, taxonomy.names
        )  # a foreign start refused before the data is read
        data_yaml = prepare_data(data, cache_dir, taxonomy)
        check_val_split(data_yaml, data)
        settings = {
            "model": model,
            "data": str(data),
            "epochs": epochs,
            "hours": hours,
            "imgsz": imgsz,
            "batch": batch,
            "device": device,
            "seed": seed,
            "lr0": lr0,
            "mosaic": mosaic,
        }
        fine_tune = {"optimizer": "AdamW", "lr0": lr0, "warmup_epochs": 0}
        schedule: dict[str, Any] = {} if lr0 is None else fine_tune
        trainer_model = YOLO(start)
        trainer_model.train(
            data=str(data_yaml),
            trainer=PartialLabelTrainer,
            epochs=epochs,
            time=hours,
            imgsz=imgsz,
            batch=batch,
            device=device,
            project=str(project.resolve()),
            name=name,
            exist_ok=True,
            cache="ram",
            workers=workers,
            seed=seed,
            mixup=0.0,  # mixing two sources' images would break the per-source class mask
            cutmix=0.0,
            mosaic=mosaic,
            pretrained=model.endswith(".pt"),
            plots=True,
            **schedule,
        )
        run_dir = Path(cast(DetectionTrainer, trainer_model.trainer).save_dir)
    write_training_card(run_dir, data_yaml, settings, time.time() - started)
    return run_dir


def widen_classes(checkpoint: Path, out: Path, names: list[str]) -> Path:
    """A copy of a checkpoint whose head also outputs the classes appended to the taxonomy since
    it was trained, so that fine-tuning it keeps what it learned (ultralytics would start the
    class layer of a head with another class count from scratch). The old classes' weights are
    copied; each new class gets a fresh row, with the bias ultralytics starts every class at."""
    loaded, _ = load_checkpoint(checkpoint)
    found = [loaded.get(key) for key in ("model", "ema")]
    modules: list[Any] = [m for m in found if isinstance(m, torch.nn.Module)]
    for model in modules:
        old = [str(model.names[i]) for i in sorted(model.names)]
        if old != names[: len(old)]:
            raise ModelError(f"{checkpoint}: its classes {old} are not the first of the taxonomy's {names}")
        head = model.model[-1]
        for index, branch in enumerate(head.cv3):
            conv = branch[-1]
            wider = torch.nn.Conv2d(conv.in_channels, len(names), 1).to(conv.weight.device, conv.weight.dtype)
            bias = cast(torch.Tensor, wider.bias)
            with torch.no_grad():
                wider.weight[: len(old)] = conv.weight
                bias[: len(old)] = conv.bias
                bias[len(old) :] = math.log(5 / len(names) / (640 / float(head.stride[index])) ** 2)
            branch[-1] = wider
        head.nc, head.no = len(names), len(names) + head.reg_max * 4
        model.yaml["nc"], model.names = len(names), dict(enumerate(names))
    loaded["fresh_classes"] = names[len(old) :]  # untrained rows: `--average` takes them from the runs
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(loaded, out)
    return out


def start_weights(model: str, cache_dir: Path, names: list[str]) -> str:
    """The weights a run starts from: a .pt whose classes are the first of the taxonomy (`names`)
    widened first; any other .pt (a COCO detector, another taxonomy) as ultralytics transfers it:
    the layers whose shapes match, the class layer new."""
    if model.endswith(".onnx"):
        raise ModelError(f"{model}: an ONNX export cannot be trained from; start from the .pt it came from")
    if not model.endswith(".pt"):
        return model
    # its class names from the checkpoint's pickle alone, which inspect_weights reads to refuse a
    # foreign file unloaded: loading every tensor as well (twice in a retraining job, which calls
    # this and then train) read the whole start again before ultralytics loaded it for the run.
    # A missing .pt is an error: nothing is downloaded.
    old = inspect_weights(Path(model)).names or []
    if not old or len(old) >= len(names) or old != names[: len(old)]:
        return model
    widened = cache_dir / "widened" / f"{file_sha256(Path(model))[:12]}-{len(names)}.pt"
    return str(widened if widened.exists() else widen_classes(Path(model), widened, names))


def _trained_class_rows(
    model: Any, states: list[dict[str, torch.Tensor]], fresh: list[list[str]]
) -> dict[str, torch.Tensor]:
    """The class layer's rows of each class averaged only over the checkpoints that trained it.

    A widened start (widen_classes) holds a random row for each class added to the taxonomy:
    averaging it in would halve what the fine-tuned run learned of that class (bicycle AP50 0.79
    fell to 0.42 in the plain mean of street-v13 and its start)."""
    names = [str(model.names[i]) for i in sorted(model.names)]
    trained = [[name not in set(skip) for name in names] for skip in fresh]
    if all(all(row) for row in trained):
        return {}
    heads = [branch[-1] for branch in model.model[-1].cv3]
    prefixes = [name for name, module in model.named_modules() if any(module is conv for conv in heads)]
    rows: dict[str, torch.Tensor] = {}
    for key in (f"{prefix}.{part}" for prefix in prefixes for part in ("weight", "bias")):
        stacked = torch.stack([state[key] for state in states])  # checkpoints x classes x ...
        shape = (*stacked.shape[:2], *[1] * (stacked.dim() - 2))
        weights = torch.tensor(trained, dtype=stacked.dtype).reshape(shape)
        rows[key] = (stacked * weights).sum(0) / weights.sum(0).clamp(min=1)
    return rows


def average_checkpoints(checkpoints: list[Path], run_dir: Path) -> Path:
    """Write the mean of the checkpoints' weights as run_dir/weights/last.pt, with its card.

    All must share one architecture and class list. Floating-point tensors are averaged in FP32
    and stored in the last checkpoint's dtype; integer buffers (BatchNorm's batch counter) are the
    last one's; a class a widened start never trained is taken from the others only. The result
    is final (no optimizer, no EMA), ready for `streetorder export --name`.
    """
    if len(checkpoints) < 2:
        raise ModelError("--average needs at least two checkpoints")
    loaded, models = [], []
    for path in checkpoints:
        checkpoint, module = load_checkpoint(path)
        loaded.append(checkpoint)
        models.append(module)
    dtype = next(models[-1].parameters()).dtype
    models = [model.float() for model in models]
    states = [model.state_dict() for model in models]
    shapes = [{key: tuple(value.shape) for key, value in state.items()} for state in states]
    for path, model, shape in zip(checkpoints, models, shapes, strict=True):
        if model.names != models[-1].names or shape != shapes[-1]:
            raise ModelError(f"{path}: another architecture or class list than {checkpoints[-1]}")
    mean = {
        key: torch.stack([state[key] for state in states]).mean(0) if value.is_floating_point() else value
        for key, value in states[-1].items()
    }
    mean.update(_trained_class_rows(models[-1], states, [c.get("fresh_classes") or [] for c in loaded]))
    models[-1].load_state_dict(mean)
    averaged = {
        **loaded[-1],
        "model": models[-1].to(dtype),
        "ema": None,
        "optimizer": None,
        "updates": None,
        "epoch": -1,
    }
    weights = run_dir / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    torch.save(averaged, weights / "last.pt")
    card_path = checkpoints[-1].parent / "card.yaml"  # the last one's data and settings hold
    card = yaml.safe_load(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    card["training"] = {
        **(card.get("training") or {}),
        "averaged_from": [{"checkpoint": str(path), "sha256": file_sha256(path)} for path in checkpoints],
        "recipe": f"streetorder train --average {' '.join(map(str, checkpoints))} --name {run_dir.name}",
    }
    card_text = yaml.safe_dump(card, allow_unicode=True, sort_keys=False)
    (weights / "card.yaml").write_text(card_text, encoding="utf-8")
    return run_dir
