"""The options of `spotter train`, declared once in :class:`TrainOptions`.

Each field of :class:`TrainOptions` carries its default, help text, group and
choices; from them come the command-line flags (:func:`add_arguments`), the
``--config`` YAML (:func:`load_config`: keys are the long option names),
the run's ``OUT/config.yaml`` (:meth:`TrainOptions.to_yaml`, which
``--config`` reads back), the training facts stored in ``model.pt`` and
``metrics.json`` (:meth:`TrainOptions.summary`) and the keyword arguments of
:class:`spotter.training.module.KWSModule` (:meth:`TrainOptions.hparams`).

Field metadata:

``help``, ``group``
    the flag's help (``%(default)s`` is argparse's; ``{recipe}`` becomes the
    recipe's defaults, :data:`RECIPES`) and its group in ``--help``.
``choices``, ``metavar``, ``flag``
    as argparse's; ``flag`` defaults to ``--`` + the name with dashes.
``hparam``
    handed to ``KWSModule`` (``None``: the recipe's value, :func:`recipe_defaults`).
``requires``
    the option only applies when this other option is set (``--distill-weight`` needs ``--teacher``), or
    one of these others (a tuple).
``summary``
    ``False``: left out of the training facts (where and how the run ran, not what it trained);
    a string: the fact's name there.
``saved``
    ``False``: left out of ``OUT/config.yaml``.

Importing this module loads neither torch nor Lightning, so ``spotter --help`` stays quick.
"""

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..config import ARCHITECTURES, KEYWORDS, MEL_PARAMS, NORMALIZATIONS, STFT_PARAMS, WINDOW_SECONDS_RANGE, parse_keywords
from ..errors import SpotterError

#: The repository's config folder, used when the installed package ``spotter.configs`` is absent.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "train" / "configs"
#: The package the shipped configs are installed as (train/configs/ in the repository).
CONFIG_PACKAGE = "spotter.configs"

#: ``--help`` group titles, in order.
GROUPS = {
    "model": "model",
    "data": "data",
    "optimisation": "optimisation (defaults: the BC-ResNet recipe; Adam for linear)",
    "hardware": "hardware (passed to the Lightning Trainer)",
    "output": "output",
}

#: The optimiser recipe of each model family; the optimisation options left at None take these.
RECIPES = {
    "bcresnet": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3, "warmup_epochs": 5, "frontend_lr": 1e-3,
                 "augment": True},
    "linear": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "warmup_epochs": 0, "frontend_lr": 1e-4,
               "augment": False},
}


def recipe_defaults(model: str) -> dict:
    """The recipe's optimiser settings for ``model`` (a fresh dict)."""
    return dict(RECIPES["linear" if model == "linear" else "bcresnet"])


def option(default, help: str, group: str, **meta):
    """A :class:`TrainOptions` field: its default and its metadata (see the module's docstring)."""
    assert group in GROUPS, group
    return field(default=default, metadata={"help": help, "group": group, **meta})


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run, with the defaults of `spotter train`."""

    # -- model
    model: str = option("bcresnet-1", "architecture (default: %(default)s)", "model", choices=ARCHITECTURES,
                        hparam=True)
    trainable_mel: bool = option(False, "train the Mel filterbank (nnAudio trainable_mel)", "model", hparam=True)
    trainable_stft: bool = option(False, "train the STFT kernels (nnAudio trainable_STFT)", "model", hparam=True)
    mel_param: str = option("log", "how a trainable Mel filterbank learns: 'log' (each filter's weights in the log "
                            "domain on its band, its area kept), 'band' (triangles that learn their centre and bandwidth) or 'matrix' "
                            "(nnAudio's raw matrix; default: "
                            "%(default)s)", "model", choices=MEL_PARAMS, hparam=True, requires="trainable_mel")
    stft_param: str = option("kernels", "how trainable STFT kernels learn: 'kernels' (nnAudio's sine and cosine kernels, "
                             "every weight) or 'window' (the analysis window alone, in the log domain, its sum kept; "
                             "the Fourier basis fixed; default: %(default)s)", "model", choices=STFT_PARAMS,
                             hparam=True, requires="trainable_stft")
    normalize: str = option("none", "per-window normalisation of the log-Mel image: 'mean' subtracts each Mel bin's "
                            "mean over the window (level and fixed spectral tilt drop out; default: %(default)s)",
                            "model", choices=NORMALIZATIONS, hparam=True)
    window_seconds: float = option(1.0, "length of the window the model classifies, 0.5-2 s in steps of 0.01 s: 1 s "
                                   "for words, more for a longer phrase (default: %(default)s)", "model", hparam=True)
    # -- data
    data: str = option("gsc", "'gsc' (Google Speech Commands v2, downloaded once) or a folder in its layout, e.g. "
                       "one made by `spotter data synth` (default: %(default)s)", "data")
    data_dir: str | None = option(None, "cache folder for the downloaded dataset (default: $SPOTTER_DATA_DIR, "
                                  "else $XDG_CACHE_HOME/spotter or ~/.cache/spotter)", "data", summary=False)
    keywords: str | None = option(None, "the model's own keywords, separated by commas, e.g. 'lights on,next slide': "
                                  "their folders in --data are the classes and every other word folder is "
                                  "'unknown' (default: Speech Commands' ten)", "data")
    workers: int = option(0, "DataLoader worker processes (default: %(default)s)", "data", summary=False)
    unknown_fraction: float = option(0.1, "share of 'unknown' clips in each split (default: %(default)s, the "
                                     "12-class protocol)", "data")
    silence_fraction: float = option(0.1, "share of 'silence' clips in each split (default: %(default)s, the "
                                     "12-class protocol)", "data")
    redraw_unknown: bool = option(False, "draw the epoch's unknown clips afresh from all of them every epoch "
                                  "(default: one draw for the whole run, as Speech Commands' protocol does); same "
                                  "epoch size, more negatives seen", "data")
    no_preload: bool = option(False, "read clips from disk every epoch instead of loading them into memory once "
                              "(for corpora larger than RAM)", "data", summary=False)
    # -- optimisation
    epochs: int = option(30, "training epochs (default: %(default)s)", "optimisation")
    batch_size: int = option(128, "clips per batch (default: %(default)s)", "optimisation")
    lr: float | None = option(None, "peak learning rate (default: {recipe})", "optimisation", hparam=True)
    frontend_lr: float | None = option(None, "learning rate of trainable STFT kernels and a raw Mel matrix; "
                                       "the shapes (log-domain or band Mel filters, the STFT window) take --lr (default: {recipe})", "optimisation",
                                       hparam=True)
    frontend_freeze_epochs: float = option(0.0, "keep the trainable front end fixed for the first epochs, then train "
                                           "it (default: %(default)s)", "optimisation", hparam=True,
                                           requires=("trainable_mel", "trainable_stft"))
    frontend_decay: float = option(0.0, "pull the trainable front end towards its initial bases: adds "
                                   "DECAY/2 x the squared distance of its parameters from their start to the loss "
                                   "(L2-SP; default: %(default)s, off)", "optimisation", hparam=True,
                                   requires=("trainable_mel", "trainable_stft"))
    optimizer: str | None = option(None, "default: {recipe}", "optimisation", choices=("sgd", "adam"), hparam=True)
    weight_decay: float | None = option(None, "default: {recipe}", "optimisation", hparam=True)
    warmup_epochs: float | None = option(None, "linear warm-up (default: {recipe}; at most a quarter of the run)",
                                         "optimisation", hparam=True)
    no_augment: bool = option(False, "no time shift / noise / gain / SpecAugment", "optimisation", summary=False)
    aug: list[str] | None = option(
        None, "change one augmentation setting, e.g. --aug speed=0.85,1.15 --aug eq_db=6 --aug lowpass_prob=0.15 "
        "(keys: spotter.training.augment.AugmentConfig); repeatable", "optimisation", metavar="KEY=VALUE",
        summary=False)
    seed: int = option(0, "random seed (default: %(default)s)", "optimisation")
    init: str | None = option(None, "start from this model's weights (fine-tuning; same architecture and front end, "
                              "or its fixed front end made trainable; an ensemble gives its first member's; output "
                              "rows of labels it lacks start fresh) "
                              "instead of random ones; the schedule runs from its start", "optimisation",
                              metavar="CKPT")
    init_member: int = option(1, "with --init of an ensemble: start from this member's weights (1 = the first; "
                              "default: %(default)s)", "optimisation", requires="init", metavar="N")
    teacher: str | None = option(None, "distil this trained model (an ensemble, say) into the one being trained: the "
                                 "loss mixes cross-entropy on the labels with the teacher's softened class "
                                 "probabilities on the same augmented clips (same labels needed)", "optimisation",
                                 metavar="CKPT")
    distill_weight: float = option(0.5, "share of the distillation term in the loss, 0..1 (default: %(default)s; "
                                   "used with --teacher)", "optimisation", hparam=True, requires="teacher")
    distill_temperature: float = option(2.0, "softmax temperature of teacher and student in the distillation term "
                                        "(default: %(default)s)", "optimisation", hparam=True, requires="teacher")
    # -- hardware
    accelerator: str = option("auto", "auto, cpu, gpu, ... (default: %(default)s)", "hardware", summary=False)
    devices: str = option("auto", "number of devices or a list (default: %(default)s)", "hardware", summary=False)
    num_nodes: int = option(1, "machines for multi-node DDP (default: %(default)s)", "hardware", summary=False)
    strategy: str = option("auto", "auto, ddp, ddp_spawn, fsdp, ... (default: %(default)s)", "hardware",
                           summary=False)
    precision: str = option("32-true", "e.g. 16-mixed on GPUs (default: %(default)s)", "hardware")
    # -- output
    out: str | None = option(None, "output folder (default: runs/<model>)", "output", summary=False)
    resume: bool = option(False, "continue from OUT/checkpoints/last.ckpt; the run ends at the same total number "
                          "of epochs", "output", summary=False, saved=False)
    keep: str = option("best", "which epoch model.pt holds: the best by validation accuracy (default) or the last; "
                       "for fine-tuning, where the validation split shares the training voices' engines and an "
                       "epoch at a high learning rate can score best on it, the end of the schedule", "output",
                       choices=("best", "last"), summary="kept")
    no_progress: bool = option(False, "no progress bars", "output", summary=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))
        if self.aug:  # one item a setting: a later one (a flag after the YAML's) replaces an earlier one in place
            merged = {item.split("=", 1)[0].strip().replace("-", "_") if "=" in item else item: item
                      for item in self.aug}
            object.__setattr__(self, "aug", list(merged.values()))
        if self.keywords is not None:
            try:
                object.__setattr__(self, "keywords", ",".join(parse_keywords(self.keywords)))
            except ValueError as err:
                raise SpotterError(str(err)) from None
        lo, hi = WINDOW_SECONDS_RANGE
        if not lo <= self.window_seconds <= hi or abs(self.window_seconds * 100 - round(self.window_seconds * 100)) > 1e-6:
            raise SpotterError(f"--window-seconds {self.window_seconds:g}: use {lo:g} to {hi:g} s, in steps of 0.01 s")
        if self.frontend_freeze_epochs < 0:
            raise SpotterError(f"--frontend-freeze-epochs {self.frontend_freeze_epochs:g}: use 0 or more epochs")
        if self.init_member < 1:
            raise SpotterError(f"--init-member {self.init_member}: members count from 1")
        if self.frontend_decay < 0:
            raise SpotterError(f"--frontend-decay {self.frontend_decay:g}: use 0 (off) or more")
        if self.teacher and (not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0):
            raise SpotterError(f"--distill-weight {self.distill_weight} / --distill-temperature "
                               f"{self.distill_temperature}: the weight must be in 0..1 and the temperature above 0")

    # -- construction
    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "TrainOptions":
        """The options of a parsed command line (other attributes of ``args`` are ignored)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})

    @classmethod
    def parse(cls, argv) -> "TrainOptions":
        """The options of a `spotter train` command line (without the ``train``), ``--config`` included."""
        parser = argparse.ArgumentParser(prog="spotter train")
        add_arguments(parser)
        return cls.from_namespace(parse_with_config(parser, argv))

    # -- what the run does with them
    def applies(self, f: dataclasses.Field) -> bool:
        """Whether option ``f`` matters in this run (``requires``: only when that other option is set)."""
        needed = f.metadata.get("requires")
        if isinstance(needed, tuple):  # any one of them
            return any(getattr(self, name) for name in needed)
        return not needed or bool(getattr(self, needed))

    def keyword_set(self) -> tuple[str, ...]:
        """The keywords this run trains (``--keywords``, else Speech Commands' ten)."""
        return parse_keywords(self.keywords) if self.keywords else KEYWORDS

    def hparams(self) -> dict:
        """``KWSModule`` keyword arguments set by these options (those left at None take the recipe's value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("hparam") and self.applies(f) and getattr(self, f.name) is not None}

    def summary(self, resolved: dict | None = None) -> dict:
        """The options recorded with the trained model: every one with ``summary`` metadata not False, under
        its ``summary`` name if one is given; ``resolved`` (the hyperparameters used) fills in those left at None."""
        out = {}
        for f in fields(self):
            name = f.metadata.get("summary", True)
            if name is False or not self.applies(f):
                continue
            value = getattr(self, f.name)
            if value is None and resolved and f.name in resolved:
                value = resolved[f.name]
            out[f.name if name is True else name] = value
        return out

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_yaml(self) -> str:
        """Every option (but ``resume``) as YAML that ``spotter train --config`` reads back to these options."""
        import yaml

        recipe = recipe_defaults(self.model)
        lines = ["# The options of a `spotter train` run: `spotter train --config THIS_FILE --out NEW_DIR` trains",
                 "# it again (flags on the command line win). null: the recipe's value, noted beside it."]
        group = None
        for f in fields(self):
            if not f.metadata.get("saved", True):
                continue
            if f.metadata["group"] != group:
                group = f.metadata["group"]
                lines.append(f"# {GROUPS[group]}")
            value = getattr(self, f.name)
            if f.name == "aug" and value:
                value = _aug_mapping(value)
            text = yaml.safe_dump({f.name: value}, default_flow_style=None if isinstance(value, dict) else False,
                                  sort_keys=False, width=1000).rstrip("\n")
            if value is None and f.name in recipe:
                text += f"  # recipe: {recipe[f.name]}"
            lines.append(text)
        return "\n".join(lines) + "\n"


def _checked(f: dataclasses.Field, value):
    """``value`` as option ``f``'s type (numbers from text, text from numbers), or a one-line error."""
    flag = _flag(f)
    kind, optional = _kind(f)
    if value is None and optional:
        return None
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError
        elif kind is list:
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, (list, tuple)) or any(isinstance(v, (dict, list)) for v in value):
                raise ValueError
            value = [str(v) for v in value]
        elif kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif kind is str:
            if isinstance(value, (bool, dict, list)) or value is None:
                raise ValueError
            value = str(value)
    except (TypeError, ValueError):
        wanted = {bool: "true or false", list: "a list of KEY=VALUE", int: "a whole number", float: "a number",
                  str: "a word"}[kind]
        raise SpotterError(f"{flag} {value!r}: expected {wanted}") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise SpotterError(f"{flag} {value}: choose from {', '.join(choices)}")
    return value


def _kind(f: dataclasses.Field) -> tuple[type, bool]:
    """(bool, int, float, str or list; whether None is allowed) of a field's annotation."""
    tp, optional = f.type, False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp, optional = args[0], True
    return (typing.get_origin(tp) or tp), optional


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _recipe_text(name: str) -> str:
    family, linear = RECIPES["bcresnet"][name], RECIPES["linear"][name]
    show = (lambda v: f"{v:g}") if isinstance(family, (int, float)) else str
    return f"{show(family)}; {show(linear)} for linear"


def _aug_mapping(items: list[str]):
    """``["speed=0.85,1.15", "eq_db=8"]`` -> ``{"speed": [0.85, 1.15], "eq_db": 8}`` (what ``aug:`` in a YAML
    turns back into the same list); the list itself where an item is not KEY=VALUE."""
    import yaml

    if not all("=" in item for item in items):
        return list(items)
    mapping = {}
    for item in items:
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(f"[{text}]" if "," in text else text)
        except yaml.YAMLError:
            value = text
        if not isinstance(value, (str, int, float, list)) or (
                ",".join(map(str, value)) if isinstance(value, list) else str(value)) != text:
            value = text  # keep the text where the YAML value would read back differently
        mapping[key] = value
    return mapping


# -- argparse ------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add `spotter train`'s flags, one per :class:`TrainOptions` field, and ``--config``, to ``p``."""
    p.add_argument("--config", metavar="YAML", help="a YAML file of option defaults, or the name of a shipped one "
                   "(e.g. shipped.yaml; train/configs/ in the repository); flags on the command line win")
    groups: dict = {}
    for f in fields(TrainOptions):
        meta = f.metadata
        if meta["group"] not in groups:
            groups[meta["group"]] = p.add_argument_group(GROUPS[meta["group"]])
        kind, _ = _kind(f)
        kwargs = {"default": f.default, "help": meta["help"].replace("{recipe}", _recipe_text(f.name))
                  if "{recipe}" in meta["help"] else meta["help"]}
        if kind is bool:
            kwargs["action"] = "store_true"
        elif kind is list:
            kwargs["action"] = "append"
        else:
            kwargs["type"] = kind
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = list(meta[key]) if key == "choices" else meta[key]
        groups[meta["group"]].add_argument(_flag(f), dest=f.name, **kwargs)


def parse_with_config(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv``; a ``--config`` YAML supplies defaults that explicit flags override.

    The options are checked (types, choices) whichever way they came; a bad one is a one-line SpotterError."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        parser.set_defaults(**load_config(args.config))
        args = parser.parse_args(argv)
    for name, value in TrainOptions.from_namespace(args).to_dict().items():
        setattr(args, name, value)
    return args


# -- YAML ------------------------------------------------------------------------------------------------

def shipped_configs():
    """The folder of the shipped configs: the installed package ``spotter.configs``, else train/configs/."""
    import importlib.resources

    try:
        return importlib.resources.files(CONFIG_PACKAGE)
    except (ModuleNotFoundError, TypeError):
        return CONFIG_DIR


def shipped_config_names() -> list[str]:
    return sorted(entry.name for entry in shipped_configs().iterdir() if entry.name.endswith(".yaml"))


def find_config(name: str):
    """The file ``--config NAME`` means: a path, else a shipped config of that name (``.yaml`` optional)."""
    path = Path(name).expanduser()
    if path.is_file() or Path(name).name != name:
        return path
    folder = shipped_configs()
    for candidate in (name, f"{name}.yaml"):
        if folder.joinpath(candidate).is_file():
            return folder.joinpath(candidate)
    return path


def load_config(name: str) -> dict:
    """A ``--config`` YAML as {option name: value}: keys are long option names with - or _; ``aug:`` may be
    a mapping (``aug: {speed: [0.85, 1.15]}``) or a list of KEY=VALUE. Unknown keys: a one-line SpotterError."""
    import yaml

    source = find_config(name)
    try:
        values = yaml.safe_load(source.read_text()) or {}
    except FileNotFoundError:
        raise SpotterError(f"--config {name}: no such file, nor a shipped config of that name "
                           f"({', '.join(shipped_config_names())})") from None
    except (OSError, yaml.YAMLError) as err:
        raise SpotterError(f"--config {name}: cannot read it ({' '.join(str(err).split())})") from None
    if not isinstance(values, dict):
        raise SpotterError(f"--config {name}: expected option: value lines, found a {type(values).__name__}")
    known = {f.name for f in fields(TrainOptions)}
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise SpotterError(f"--config {source}: unknown option(s) {', '.join(unknown)}")
    if isinstance(values.get("aug"), dict):  # aug: {speed: [0.85, 1.15]} -> what --aug would give
        values["aug"] = [f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                         for k, v in values["aug"].items()]
    elif isinstance(values.get("aug"), str):
        values["aug"] = [values["aug"]]
    return values
