"""fervid-train's settings, defined once: each field of :class:`TrainConfig` carries its
default, its help and its command-line type, from which the ``fervid-train`` options are made
and the values checked (the same ranges for the API and the command line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from fervid.architectures import arch_spec
from fervid.options import check_fields, setting
from fervid.options import click_options as _click_options

METRICS = ("balanced_acc", "acc", "macro_f1")


option = setting  # the name the fields below use


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` beside it."""

    data: list[str] = option(
        list,
        "Dataset root: RAF-DB layout or class folders (train/, val/, test/). Repeat for "
        "several datasets in one run: their classes are mapped onto the seven emotions.",
        multiple=True,
        type=click.Path(file_okay=False),
    )
    arch: str = "resnet34"
    out: str = option(
        "runs",
        "Output folder: <out>/<arch>/ per run, the comparison report in <out>.",
        type=click.Path(file_okay=False),
    )
    epochs: int = option(
        20,
        "Training epochs.",
        type=click.IntRange(1),
    )
    time_budget: float | None = option(
        None,
        "Per architecture: after the first epoch, train only as many epochs (at most "
        "--epochs) as fit in this many minutes; the schedule is planned to end there.",
        type=click.FloatRange(0, min_open=True),
        metavar="MINUTES",
    )
    batch_size: int = option(
        64,
        "Images per step (per process under torchrun).",
        type=click.IntRange(1),
    )
    lr: float = option(
        1e-3,
        "Peak learning rate.",
        type=click.FloatRange(min=0, min_open=True),
    )
    optimizer: str = option(
        "adamw",
        "Optimiser.",
        type=click.Choice(["adamw", "sgd"]),
    )
    schedule: str = option(
        "cosine",
        "After the warm-up: cosine decay to zero, or reduce-on-plateau of the selection metric.",
        type=click.Choice(["cosine", "plateau"]),
    )
    plateau_patience: int = option(
        5,
        "plateau: epochs without improvement before the learning rate is cut.",
        type=click.IntRange(0),
    )
    plateau_factor: float = option(
        0.1,
        "plateau: the cut's factor.",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
    )
    weight_decay: float = option(
        0.05,
        "Weight decay (not on norms and biases).",
        type=float,
    )
    momentum: float = 0.9
    warmup_epochs: float = option(
        1.0,
        "Linear warm-up before the cosine schedule.",
        type=float,
    )
    label_smoothing: float = option(
        0.1,
        "Label smoothing.",
        type=click.FloatRange(0, 1, max_open=True),
    )
    input_size: int | None = option(
        None,
        "Input side in pixels. Default: each architecture's own (224, 300 for b3, 600 for b7).",
        type=click.IntRange(16, 1024),
    )
    pretrained: bool = option(
        False,
        "Start from torchvision's ImageNet weights (needs them online or in TORCH_HOME).",
        flags=("--pretrained/--no-pretrained",),
    )
    init: str | None = option(
        None,
        "Start from this fervid checkpoint's weights (fine-tuning; e.g. the bundled model). "
        "A head for other classes starts fresh.",
        type=click.Path(dir_okay=False, exists=True),
    )
    balance: str = option(
        "sampler",
        "Class balance: inverse-frequency WeightedRandomSampler, class-weighted loss, or none.",
        type=click.Choice(["sampler", "loss", "none"]),
    )
    logit_adjust: float | None = option(
        None,
        "Logit adjustment (Menon et al., 2021): the loss takes out the class prior the "
        "sampler draws and trains the logits for the prior count^(1-TAU): 0 the datasets' own "
        "class frequencies (balanced sampling without over-predicting rare classes), 1 every "
        "class equal. Off when not given.",
        type=click.FloatRange(0, 1),
    )
    logit_adjust_by: str = option(
        "all",
        "Whose class prior --logit-adjust takes out: 'all' the draws' over every dataset; "
        "'source' each dataset's own, so that telling the datasets apart (by colour, "
        "framing, ...) no longer tells the class.",
        type=click.Choice(["all", "source"]),
    )
    balance_power: float = option(
        1.0,
        "Strength of balancing: class weight = count^-power "
        "(1: every class equally often; 0.5: square-root).",
        type=click.FloatRange(0, 1, min_open=True),
    )
    source_power: float = option(
        0.0,
        "Several --data: also balance the datasets, draw weight x count(dataset)^-power "
        "(1: each dataset equally often; 0: in proportion to its size).",
        type=click.FloatRange(0, 1),
    )
    device: str = option(
        "auto",
        "auto, cpu, cuda, cuda:N or mps.",
    )
    amp: str = option(
        "auto",
        "Mixed precision: auto = bf16/fp16 on CUDA, bf16 on CPUs with AMX or AVX-512 bf16, "
        "else off.",
        type=click.Choice(["auto", "bf16", "fp16", "off"]),
    )
    channels_last: bool | None = None
    clip_grad: float = option(
        1.0,
        "Gradient norm clip (0: off).",
        type=float,
    )
    ema: bool = option(
        False,
        "Keep and evaluate an exponential moving average of the weights.",
        flags=("--ema/--no-ema",),
    )
    ema_decay: float = option(
        0.999,
        "EMA decay per step.",
        type=float,
    )
    seed: int = option(
        0,
        "Seed: same seed and data, same run.",
        type=int,
    )
    workers: int = option(
        2,
        "DataLoader workers when streaming from disk.",
        type=click.IntRange(0, 64),
    )
    cache: str = option(
        "auto",
        "Decode once into memory, or stream from disk. auto: memory when it fits in 3 GB.",
        type=click.Choice(["auto", "memory", "stream"]),
    )
    select: str = option(
        "balanced_acc",
        "Metric that picks the best checkpoint.",
        type=click.Choice(["balanced_acc", "acc", "macro_f1"]),
    )
    select_source: str = option(
        "mean",
        "Several --data: select on the mean of --select over the datasets, or on one "
        "dataset's (its folder name, or rafdb).",
        metavar="mean|NAME",
    )
    channels: str = option(
        "auto",
        "Colour mode; auto: grayscale when the images are.",
        type=click.Choice(["auto", "grayscale", "rgb"]),
    )
    eval_split: str = option(
        "auto",
        "What selects the best epoch: auto = the dataset's val/ split, else a part of "
        "train held out (--holdout). 'test' selects on the test split (optimistic figures).",
        type=click.Choice(["auto", "val", "holdout", "test"]),
    )
    holdout: float = option(
        0.1,
        "Fraction of train held out (stratified, fixed seed) where a dataset has no val.",
        type=click.FloatRange(0, 1, max_open=True),
    )
    test: bool = option(
        True,
        "Evaluate the best epoch once on each dataset's test split, if it has one "
        "(reported, never used for selection).",
        flags=("--test/--no-test",),
    )
    exclude: list[str] = option(
        list,
        "A file listing training images to leave out (one path per line, relative to "
        "the file's folder), e.g. copies of another set's test images. Repeatable.",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True),
    )
    labels: str = option(
        "dataset",
        "ferplus: train on FER+ crowd votes (ferplus.csv at a --data root) instead of the "
        "folder labels.",
        type=click.Choice(["dataset", "ferplus"]),
    )
    soft_labels: list[str] = option(
        list,
        "A vote table (CSV: a path column relative to the file, one column per class) "
        "whose distributions are the training targets of the images it lists. Repeatable.",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True),
    )
    soft_min_valid: float = option(
        0.5,
        "Soft labels: skip an image whose votes for the classes (not contempt, unknown, "
        "not-a-face) are under this share of its votes.",
        type=click.FloatRange(0, 1, min_open=True),
    )
    eval_labels: str = option(
        "dataset",
        "Soft labels: evaluate against the dataset's labels, or the votes' majority.",
        type=click.Choice(["dataset", "majority"]),
    )
    aug_scale: float = option(
        0.7,
        "Smallest area kept by the random resized crop.",
        type=click.FloatRange(0.05, 1),
    )
    rotate: float = option(
        10.0,
        "Max random rotation in degrees.",
        type=float,
    )
    jitter: float = option(
        0.3,
        "Brightness/contrast/saturation jitter.",
        type=float,
    )
    erase: float = option(
        0.25,
        "Random erasing probability.",
        type=click.FloatRange(0, 1),
    )
    random_gray: float = option(
        0.0,
        "Colour models: probability of turning a training image grayscale.",
        type=click.FloatRange(0, 1),
    )
    footage: float = option(
        0.0,
        "Probability of each degradation of real footage (resolution loss, blur or motion "
        "blur, low light and gamma, noise, JPEG artefacts) on a training image (0: off).",
        type=click.FloatRange(0, 1),
    )
    mixup: float = option(
        0.0,
        "Mixup Beta alpha (0: off).",
        type=click.FloatRange(0),
    )
    cutmix: float = option(
        0.0,
        "CutMix Beta alpha (0: off).",
        type=click.FloatRange(0),
    )
    mix_prob: float = option(
        1.0,
        "Probability of mixing a batch (mixup or CutMix, chosen at random if both).",
        type=click.FloatRange(0, 1),
    )
    crop_scale: float = option(
        1.0,
        "Crop policy saved in the checkpoint: crop side = scale x the detector box's long side.",
        type=click.FloatRange(0.2, 5),
    )
    crop_shift: float = option(
        0.0,
        "Crop policy: crop centre moved down by this fraction of the box height.",
        type=click.FloatRange(-1, 1),
    )
    tta: str = option(
        "none",
        "Test-time augmentation for evaluation, saved in the checkpoint so that inference "
        "does the same: hflip averages each face with its mirror image.",
        type=click.Choice(["none", "hflip"]),
    )
    ignore_unknown: bool = option(
        False,
        "Skip class folders that are not one of the seven emotions (e.g. contempt) "
        "instead of refusing.",
        is_flag=True,
    )
    dataset_name: str = ""
    progress: bool = True
    resume: bool = option(
        False,
        "Continue the runs found in --out from their last completed epoch.",
        is_flag=True,
    )

    def __post_init__(self) -> None:
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]
        self.exclude = [str(e) for e in self.exclude]
        self.soft_labels = [str(s) for s in self.soft_labels]

    def validate(self) -> None:
        """Check every value against its option's type (ValueError naming the option)."""
        spec = arch_spec(self.arch)
        if self.input_size is not None and self.input_size < spec.min_input:
            raise ValueError(
                f"--input-size {self.input_size}: {self.arch} takes at least {spec.min_input} px"
            )
        if not self.data:
            raise ValueError("--data is required")
        if self.logit_adjust_by == "source" and self.logit_adjust is None:
            raise ValueError("--logit-adjust-by source needs --logit-adjust TAU")
        check_fields(self)


#: The settings that decide a run's datasets and splits (what ``open_sources`` takes).
SOURCE_SETTINGS = (
    "data",
    "eval_split",
    "holdout",
    "exclude",
    "labels",
    "soft_labels",
    "soft_min_valid",
    "eval_labels",
    "ignore_unknown",
)


def click_options(command, names: Sequence[str] | None = None):
    """Decorate a click command with an option for every setting of :class:`TrainConfig`
    (or for those in ``names``)."""
    return _click_options(TrainConfig, names)(command)


def source_options(command):
    """The options of :data:`SOURCE_SETTINGS`, as ``fervid-train`` defines them."""
    return click_options(command, SOURCE_SETTINGS)
