"""The ``sk-asd`` command line: train, score, evaluate and demo.

Run ``sk-asd --help`` or ``python -m sk_asd --help``. Results go to stdout
(tables) or to the files named by ``--csv``; progress, skipped files and
errors go to stderr, so ``sk-asd score ... --csv - > scores.csv`` gives a
clean file. An error is reported as one line ``sk-asd: error: <reason>`` and a
non-zero exit status; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sk_asd import __version__

if TYPE_CHECKING:
    import numpy as np

    from sk_asd.estimator.detector import AnomalousSoundDetector

__all__ = ["build_parser", "main"]

PROG = "sk-asd"

#: Training clips beyond this many bytes (as float32) are streamed from their
#: files instead of loaded at once.
STREAM_BYTES = 2 * 2**30

#: File suffixes a directory argument of ``score`` is expanded to.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")

#: Errors reported as one line; anything else is a bug and keeps its traceback.
#: The package's AudioLoadError and ModelLoadError are ValueErrors;
#: FileNotFoundError and PermissionError (output files) are OSErrors.
REPORTED_ERRORS = (ValueError, TypeError, OSError)

#: The commands and their one-line help, for ``sk-asd --help``: answered
#: from these alone, without importing numpy, torch or the estimator.
COMMANDS: dict[str, str] = {
    "train": "train a detector on normal clips (a DCASE, MIMII or plain folder)",
    "score": "score audio files with a trained model",
    "evaluate": "compute the DCASE AUC/pAUC table on labelled clips",
    "demo": "train and evaluate on synthetic machine sounds",
}


def _import_runtime() -> None:
    """Import what the commands use into this module (numpy, torch, sk_asd).

    Deferred to here because torch takes seconds to import: ``sk-asd
    --help``, ``--version`` and every command's ``--help`` build the parser
    without it (:func:`_parser_constants`).
    """
    global np, load_dcase, parse_dcase_filename, SCORING_BACKENDS
    global AnomalousSoundDetector, NonFiniteScoreWarning, AudioLoadError
    global labels_from_decision
    global SkippedFile, load_audios, probe_audio, MODEL_SUFFIX, load_model
    global save_model, LOSSES, _DEFAULTS
    import numpy as np

    from sk_asd.datasets.dcase import load_dcase, parse_dcase_filename
    from sk_asd.estimator.detector import SCORING_BACKENDS, AnomalousSoundDetector
    from sk_asd.estimator.guards import NonFiniteScoreWarning, labels_from_decision
    from sk_asd.io.audio import AudioLoadError, SkippedFile, load_audios, probe_audio
    from sk_asd.io.model import MODEL_SUFFIX, load_model, save_model
    from sk_asd.nn.losses import LOSSES

    # Hyperparameter defaults come from the estimator so the two cannot drift.
    _DEFAULTS = AnomalousSoundDetector().get_params()


def _parser_constants() -> None:
    """Set what the options of the commands show (defaults, choices), read
    from the package's source: ``sk-asd train --help`` needs no torch."""
    global SCORING_BACKENDS, LOSSES, MODEL_SUFFIX, _DEFAULTS
    from sk_asd.cli.constants import detector_defaults, package_constant

    SCORING_BACKENDS = package_constant("estimator.backends", "SCORING_BACKENDS")
    LOSSES = package_constant("nn.losses", "LOSSES")
    MODEL_SUFFIX = package_constant("io.model", "MODEL_SUFFIX")
    _DEFAULTS = detector_defaults()


# ---------------------------------------------------------------- reporting
class _Reporter:
    """Progress lines on stderr, silenced by ``--quiet``; warnings always."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            # sys.stderr is looked up at call time so that pytest's capsys
            # and redirections made after import are honoured.
            print(f"{PROG}: {message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


class _Progress:
    """``loaded 200/1000 clip(s), 3 s elapsed, about 12 s left`` on stderr,
    at most every few seconds and once at the end, for a person waiting on
    a large folder.  Plain lines (no terminal control codes), so a log file
    reads the same; silent with ``--quiet`` and for quick work."""

    #: Seconds between two lines.
    INTERVAL = 2.0

    def __init__(
        self,
        report: _Reporter,
        done_what: str = "loaded",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.report = report
        self.done_what = done_what
        self.clock = clock
        self.start = clock()
        self.last = self.start

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last < self.INTERVAL and (
            done < total or self.last == self.start
        ):
            return  # nothing shown for loads that end within the interval
        self.last = now
        elapsed = now - self.start
        left = elapsed / done * (total - done)
        self.report.info(
            f"{self.done_what} {done}/{total} clip(s), {elapsed:.0f} s elapsed"
            + (f", about {left:.0f} s left" if done < total else "")
        )


def _one_line(exc: BaseException) -> str:
    """Message of ``exc`` on a single line."""
    text = str(exc)
    if isinstance(exc, OSError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        # OSError subclasses built with one message argument (the package's
        # *FileNotFoundError classes) would otherwise print "[Errno None] None".
        text = exc.args[0]
    text = " ".join(text.split())
    return text or type(exc).__name__


def _add_channel(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--channel",
        type=_channel_rule,
        default="mean",
        metavar="{mean,each,N}",
        help=(
            "multichannel files: 'mean' averages the channels (default); "
            "'each' keeps every channel (all files need the same number), "
            "trained on as clips of their own and scored as the mean of the "
            "channels' scores; N takes channel N (0 is the first)"
        ),
    )


def _channel_rule(text: str) -> str | int:
    """An argparse type for ``--channel``: "mean", "each" or an index >= 0."""
    if text in ("mean", "each"):
        return text
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'mean', 'each' or a channel index (0, 1, ...)"
        )
    return index


# ---------------------------------------------------------- argument types
def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for integers ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            )
        return value

    return parse


_positive_int = _int_at_least(1)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _or_auto(parse):
    """A parser that also takes ``auto`` (the detector resolves it in fit)."""

    def parse_or_auto(text: str):
        return "auto" if text == "auto" else parse(text)

    return parse_or_auto


def _crop(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    return _positive_float(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # NaN fails the comparison, so a non-number lands here too.
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


# ------------------------------------------------------------------ parser
def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """``--quiet``, ``--verbose`` and ``--debug``, before or after the command.

    On the sub-commands their default is ``SUPPRESS``, so a flag given before
    the command is not reset by the sub-command's default.
    """
    parent = argparse.ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else False
    group = parent.add_argument_group("output")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress messages on stderr (warnings and errors still show)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="more detail, e.g. the per-epoch training table (on stderr)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an error, show the full Python traceback",
    )
    return parent


def _add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "train",
        parents=[common],
        help=COMMANDS["train"],
        description=(
            "Train a detector on normal clips. DATA_DIR is one of: a DCASE Task 2 "
            "dataset folder, with --machine-type (DATA_DIR/<machine type>/<split>/;"
            " machine IDs id_XX, section_XX from the file names; with --split test,"
            " for development data that has no train folder, the first "
            "--train-fraction of each machine ID's normal clips by sorted file "
            "name, recorded in the model file so that 'sk-asd evaluate' leaves "
            "them out); a MIMII-style machine folder with one sub-folder per "
            "machine ID (fan/id_00/normal/*.wav: the ID is the sub-folder's name, "
            "clips under abnormal/ are left out); or a plain folder of normal "
            "clips of one machine (its name is the machine ID, or the parent's "
            "when it is called 'normal'; DCASE file names give their own IDs)."
        ),
    )
    p.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help="DCASE dataset folder (with -m), MIMII-style machine folder, or a "
        "folder of normal clips",
    )
    p.add_argument(
        "--machine-type",
        "-m",
        help="DCASE machine-type folder, e.g. fan or ToyCar (omit for a plain or "
        "MIMII-style folder)",
    )
    p.add_argument(
        "--recursive",
        "-r",
        action="store_true",
        help="plain and MIMII-style folders: also take clips from sub-folders "
        "(default: only the folder itself, or each ID's normal/ folder)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="MODEL",
        help=f"model file to write (default: <machine type>{MODEL_SUFFIX})",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite the model file if it exists (default: refuse)",
    )
    p.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="DCASE: split folder to take normal clips from (default: train)",
    )
    p.add_argument(
        "--no-attributes",
        action="store_true",
        help="DCASE 2022+: do not train on the attributes in the file names "
        "(default: machine x attribute classes as the auxiliary task)",
    )
    p.add_argument(
        "--no-domains",
        action="store_true",
        help="DCASE 2021+: do not treat target-domain training clips apart "
        "(default: kept whole as neighbours and centres)",
    )
    p.add_argument(
        "--train-fraction",
        type=_fraction,
        metavar="F",
        help=(
            "fraction of each machine ID's normal clips to train on, the first by "
            "sorted name (default: 1.0 with --split train, 0.5 with --split test)"
        ),
    )
    p.add_argument(
        "--recipe",
        choices=("auto", "paper"),
        default=_DEFAULTS["recipe"],
        help="what 'auto' settings resolve to: the small-data CPU recipe, or "
        "Choi & Choi's for DCASE-size data on a GPU (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=_or_auto(_positive_int),
        default=_DEFAULTS["max_epochs"],
        help="training epochs, or auto: from the data size (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=_or_auto(_int_at_least(2)),
        default=_DEFAULTS["batch_size"],
        help="clips per batch, at least 2 (default: %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=_or_auto(_positive_float),
        default=_DEFAULTS["lr"],
        help="AdamW learning rate (default: %(default)s)",
    )
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default=_DEFAULTS["loss"],
        help="training loss (default: %(default)s)",
    )
    p.add_argument(
        "--scoring",
        choices=("auto", *SCORING_BACKENDS),
        default=_DEFAULTS["scoring"],
        help="anomaly score: fusion (the embedding's knn distance plus clip "
        "statistics), knn, kmeans, cosine or the paper's nll; auto: the "
        "recipe's (default: %(default)s)",
    )
    p.add_argument(
        "--n-mels",
        type=_or_auto(_positive_int),
        default=_DEFAULTS["n_mels"],
        help="mel bands; fewer trains faster (default: %(default)s)",
    )
    p.add_argument(
        "--crop-seconds",
        type=_crop,
        default="auto",
        metavar="S",
        help="train on random S-second crops of each clip and score the mean "
        "over crops that cover it; 'none': whole clips; 'auto': the recipe's "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--sample-rate",
        type=_positive_int,
        default=_DEFAULTS["sample_rate"],
        help="clips are resampled to this rate in Hz (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        default=_DEFAULTS["device"],
        help="torch device: auto, cpu, cuda, cuda:1, ... (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed, for repeatable training (default: none)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable audio files (listed on stderr) instead of failing",
    )
    _add_channel(p)
    p.set_defaults(handler=_cmd_train)


def _add_score(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "score",
        parents=[common],
        help=COMMANDS["score"],
        description=(
            "Score audio files with a trained model: one row per file with its "
            "machine ID, anomaly score (higher = more anomalous) and decision "
            "(normal or anomalous, from the model's per-machine threshold). Clips "
            "are resampled to the model's sample rate and zero-padded or cut to "
            "its training clip length. The machine ID of a file is --machine-id if "
            "given, else the ID in its DCASE file name when the model knows that "
            "ID, else the name of its nearest folder that is one of the model's "
            "IDs (a plain folder per machine, MIMII's fan/id_00/...), else the "
            "model's best-matching ID."
        ),
    )
    p.add_argument("model", metavar="MODEL", help=f"model file ({MODEL_SUFFIX})")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help=(
            "also load pickle-based model files (sk_asd 0.1, joblib.dump); "
            "UNSAFE: a pickle can run any code, use only for files you trust"
        ),
    )
    p.add_argument(
        "inputs",
        metavar="FILE_OR_DIR",
        nargs="+",
        help=(
            "audio files, or folders whose " + "/".join(AUDIO_SUFFIXES) + " files "
            "are scored in sorted order (sub-folders only with --recursive)"
        ),
    )
    p.add_argument(
        "--recursive",
        "-r",
        action="store_true",
        help="also score the audio files in the sub-folders of folder arguments",
    )
    _add_scoring(p)
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="write the rows as CSV to PATH ('-' for stdout) instead of a table",
    )
    p.add_argument(
        "--machine-id",
        metavar="ID",
        help="score every file as this machine ID (one of the model's IDs)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="report unreadable files on stderr and score the rest",
    )
    _add_channel(p)
    p.set_defaults(handler=_cmd_score)


def _add_scoring(p: argparse.ArgumentParser) -> None:
    """``--scoring``: another back-end of a saved model, without retraining."""
    p.add_argument(
        "--scoring",
        choices=SCORING_BACKENDS,
        default=None,
        help="score with this back-end instead of the one the model was saved "
        "with (every back-end is prepared at training)",
    )


def _add_evaluate(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help=COMMANDS["evaluate"],
        description=(
            "Score the labelled clips (normal_/anomaly_ in the file names) of one "
            "machine type and print the DCASE table: for DCASE 2020 names, AUC "
            "and pAUC per machine ID with their mean and mAUC; for DCASE 2021 and "
            "later names, per section and domain with harmonic means under the "
            "rules of --year; from 2022 laid out as the organisers' evaluator "
            "does (AUC source, AUC target, pAUC per section; harmonic means; the "
            "official score). Evaluation data with anonymous test names "
            "(section_00_0000.wav) takes its labels and domains from the "
            "organisers' ground-truth files (--labels, --domains). Clips the "
            "model was trained on, as recorded in the model file, are left out."
        ),
    )
    p.add_argument("model", metavar="MODEL", help=f"model file ({MODEL_SUFFIX})")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help=(
            "also load pickle-based model files (sk_asd 0.1, joblib.dump); "
            "UNSAFE: a pickle can run any code, use only for files you trust"
        ),
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="DCASE dataset folder")
    p.add_argument(
        "--machine-type",
        "-m",
        help="machine-type folder (default: the one recorded in the model file)",
    )
    p.add_argument(
        "--split",
        choices=("train", "test"),
        default="test",
        help="split folder to evaluate (default: test)",
    )
    p.add_argument(
        "--year",
        type=int,
        default=None,
        help=(
            "DCASE year whose rules apply to 2021+ file names (default: 2023); "
            "when given, file names must follow that year's naming scheme"
        ),
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        action="append",
        help=(
            "ground-truth CSV for test clips whose names carry no label: rows "
            "filename,label[,domain] (label 0 normal, 1 anomalous; domain "
            "source/target or 0/1), the organisers' ground_truth_data files "
            "(filename,label) or their ground_truth_attributes files (filename,"
            "full name); repeat for several sections"
        ),
    )
    p.add_argument(
        "--domains",
        metavar="FILE",
        action="append",
        help=(
            "the organisers' ground_truth_domain CSV (rows filename,domain with "
            "0 source, 1 target) for test clips whose names carry no domain; "
            "repeat for several sections"
        ),
    )
    p.add_argument(
        "--csv",
        metavar="PATH",
        help="also write the score table as CSV to PATH ('-' for stdout)",
    )
    p.add_argument(
        "--scores-csv",
        metavar="PATH",
        help="also write one row per clip (score, label, decision) as CSV",
    )
    p.add_argument(
        "--plot",
        metavar="PATH",
        help=(
            "also save the ROC curves per machine ID, pAUC region shaded, to PATH "
            '(.png, .pdf or .svg; needs matplotlib: pip install "sk-asd[plot]")'
        ),
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="report unreadable files on stderr and evaluate the rest",
    )
    _add_channel(p)
    _add_scoring(p)
    p.set_defaults(handler=_cmd_evaluate)


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help=COMMANDS["demo"],
        description=(
            "Generate synthetic machine sounds, train a detector on the normal "
            "clips and report how well it finds the anomalies. Needs no data."
        ),
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument(
        "--quick", action="store_true", help="a smaller, faster run for a smoke test"
    )
    p.set_defaults(handler=_cmd_demo)


def build_parser(commands_only: bool = False) -> argparse.ArgumentParser:
    """Build the ``sk-asd`` argument parser.

    Parameters
    ----------
    commands_only : bool, default=False
        Build the sub-commands without their options: enough for ``sk-asd
        --help`` and ``--version``, and nothing slow is imported.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser with the ``train``, ``score``, ``evaluate`` and ``demo``
        sub-commands; each sets ``handler`` on the parsed namespace.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[_common_options(suppress=False)],
        description=(
            "Anomalous sound detection for machines (TASTgram-MFN + Noisy-ArcMix): "
            "train on normal recordings, then score new ones."
        ),
        epilog=f"Run '{PROG} <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    if commands_only:
        for name, text in COMMANDS.items():
            sub.add_parser(name, help=text)
        return parser
    _parser_constants()
    common = _common_options(suppress=True)
    _add_train(sub, common)
    _add_score(sub, common)
    _add_evaluate(sub, common)
    _add_demo(sub, common)
    return parser


# ----------------------------------------------------------------- helpers
@contextlib.contextmanager
def _open_output(path: str) -> Iterator[IO[str]]:
    """A text stream for ``path``; ``"-"`` is stdout (left open).

    A file is written under a temporary name next to it and renamed over
    ``path`` only when the block succeeds, so a failure halfway (or Ctrl+C)
    leaves a previous file intact.
    """
    if path == "-":
        yield sys.stdout
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open(
            "w", newline="", encoding="utf-8", errors="surrogateescape"
        ) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


#: First characters that make a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """``value``, with text that a spreadsheet would run as a formula quoted.

    A file name such as ``=HYPERLINK(...).wav`` would otherwise become a live
    formula when the CSV is opened (OWASP "CSV injection"); a leading ``'``
    keeps it text. Numbers (``-0.25``) are left alone.
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def _write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with _open_output(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[_csv_cell(c) for c in row] for row in rows])


def _check_output(path: str | os.PathLike[str] | None, option: str) -> None:
    """Fail before any expensive work when ``path`` cannot be written.

    The folder is created if missing (as writing would), and a file is
    created and removed in it, which is the real test of permissions.
    """
    if path is None or os.fspath(path) == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{option} '{target}' is a folder; give a file name.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = target.with_name(f".{target.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OSError(
            f"{option} '{target}' cannot be written ({reason}); choose another path."
        ) from None


def _probe_files(
    paths: Sequence[str], sample_rate: int
) -> tuple[list[int], list[int], list[tuple[int, AudioLoadError]]]:
    """Header check of every file: (good indices, their lengths, failures)."""
    good: list[int] = []
    lengths: list[int] = []
    bad: list[tuple[int, AudioLoadError]] = []
    for i, path in enumerate(paths):
        try:
            n_frames, _, file_rate = probe_audio(path)
        except AudioLoadError as exc:
            bad.append((i, exc))
            continue
        good.append(i)
        lengths.append(-(-n_frames * sample_rate // file_rate))
    return good, lengths, bad


def _report_skipped(batch: Any, report: _Reporter) -> None:
    """One line per skipped file and, if any, their count."""
    for skipped in batch.skipped:
        report.warn(f"skipped {_printable(skipped.path)}: {skipped.reason}")
    if batch.skipped:
        report.warn(
            f"warning: skipped {len(batch.skipped)} of "
            f"{len(batch.skipped) + len(batch)} file(s) (--skip-bad)"
        )


def _printable(path: str) -> str:
    """``path`` as valid UTF-8 text: bytes of a file name that are not
    UTF-8 (kept by Python as surrogate escapes) are shown as ``\\xff``."""
    try:
        raw = os.fsencode(path)
    except (UnicodeError, TypeError):
        return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _expand_inputs(inputs: Sequence[str], recursive: bool = False) -> list[str]:
    """Files as given; folders replaced by their audio files, sorted by path."""
    files: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                f
                for f in path.glob(pattern)
                if f.is_file() and f.name.lower().endswith(AUDIO_SUFFIXES)
            )
            if not found:
                raise FileNotFoundError(
                    f"No audio files ({', '.join(AUDIO_SUFFIXES)}) in folder "
                    f"'{path}'"
                    + ("" if recursive else "; use --recursive to search sub-folders")
                    + "."
                )
            files.extend(str(f) for f in found)
        else:
            # Missing or unreadable files are reported by load_audios, which
            # names the file and honours --skip-bad.
            files.append(str(path))
    return files


def _known_ids(detector: AnomalousSoundDetector) -> dict[str, Any]:
    """The model's machine IDs by their text, e.g. ``{"id_00": "id_00"}``."""
    return {str(m): m for m in detector.machine_ids_.tolist()}


def _ids_from_names(
    detector: AnomalousSoundDetector, paths: Sequence[str], machine_id: str | None
) -> tuple[list[Any], list[str]]:
    """Machine ID for each file (None = best match) and where it came from."""
    known = _known_ids(detector)
    if machine_id is not None:
        if machine_id not in known:
            raise ValueError(
                f"--machine-id {machine_id!r} is not one of the model's machine IDs "
                f"{sorted(known)}; omit it to use the IDs in the file names or the "
                "best match."
            )
        return [known[machine_id]] * len(paths), ["option"] * len(paths)
    ids: list[Any] = []
    sources: list[str] = []
    for p in paths:
        try:
            parsed = parse_dcase_filename(Path(p).name)["machine_id"]
        except ValueError:
            parsed = None
        # A folder per machine (plain, or MIMII's fan/id_00/normal/x.wav):
        # the nearest enclosing folder that names one of the model's IDs.
        folder = next(
            (d.name for d in Path(p).resolve().parents if d.name in known), None
        )
        if parsed in known:
            ids.append(known[parsed])
            sources.append("filename")
        elif folder is not None:
            ids.append(known[folder])
            sources.append("folder")
        else:
            ids.append(None)
            sources.append("best-match")
    return ids, sources


#: Scoring batches per progress step of the command line: a chunk of this
#: many batches is scored at a time (whole batches, so the scores are those
#: of one call on every clip).
PROGRESS_BATCHES = 16


def _score_clips(
    detector: AnomalousSoundDetector,
    X: np.ndarray,
    ids: Sequence[Any],
    *,
    with_decisions: bool = True,
    report: _Reporter | None = None,
) -> tuple[np.ndarray, list[Any], np.ndarray | None]:
    """Anomaly scores, the machine ID used and predict's labels for each clip.

    Clips with ``ids[i] is None`` are scored against their best-matching
    machine ID (the lowest anomaly score), as ``score_samples(X,
    machine_ids=None)`` does.  The network runs once per clip
    (:meth:`~sk_asd.AnomalousSoundDetector.score_details`), on chunks of
    :data:`PROGRESS_BATCHES` batches so that ``report`` can show progress.
    """
    n = X.shape[0]
    anomaly = np.empty(n, dtype=np.float64)
    decision = np.empty(n, dtype=np.float64)
    used: list[Any] = list(ids)
    given = np.array([m is not None for m in ids], dtype=bool)
    chunk = PROGRESS_BATCHES * max(1, int(getattr(detector, "batch_size_", 32)))
    progress = _Progress(report, "scored") if report is not None else None
    done = 0
    for rows, machine_ids in (
        (np.flatnonzero(given), [m for m in ids if m is not None]),
        (np.flatnonzero(~given), None),
    ):
        for start in range(0, rows.size, chunk):
            part = rows[start : start + chunk]
            details = detector.score_details(
                X[part],
                machine_ids=(
                    None if machine_ids is None else machine_ids[start : start + chunk]
                ),
            )
            anomaly[part] = -details.score_samples
            decision[part] = details.decision_function
            for row, m in zip(part.tolist(), details.machine_ids.tolist(), strict=True):
                used[row] = m
            done += part.size
            if progress is not None:
                progress(done, n)
    decisions = None
    if with_decisions:
        with warnings.catch_warnings():
            # The commands name such files themselves (_report_non_finite),
            # by path rather than by row.
            warnings.simplefilter("ignore", NonFiniteScoreWarning)
            decisions = labels_from_decision(decision)
    return anomaly, used, decisions


def _report_non_finite(
    anomaly: np.ndarray, paths: Sequence[str], report: _Reporter
) -> None:
    """Name the files whose anomaly score is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(anomaly))
    if bad.size:
        shown = ", ".join(_printable(paths[i]) for i in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        report.warn(
            f"warning: {bad.size} clip(s) got a NaN or infinite anomaly score and "
            f"count as anomalous: {shown}{more}"
        )


def _decision_text(label: int) -> str:
    return "anomalous" if label == -1 else "normal"


def _load_files(
    paths: Sequence[str],
    *,
    sample_rate: int,
    n_samples: int,
    skip_bad: bool,
    channel: str | int,
    report: _Reporter,
) -> Any:
    """``load_audios`` with the ``--channel`` rule and progress lines.

    With ``channel="each"`` the rows of every file's channels are regrouped
    into ``waves`` of shape ``(n_files, n_channels, n_samples)``, the input
    the detector takes for multichannel clips (one row per file in
    ``paths``, ``indices`` and ``lengths``); files of one channel stay 2-D.
    """
    batch = load_audios(
        paths,
        sample_rate=sample_rate,
        channel=channel,
        length="pad",
        target_length=n_samples,
        skip_bad=skip_bad,
        progress=_Progress(report),
    )
    if channel != "each":
        return batch
    counts = np.unique(batch.indices, return_counts=True)[1]
    if counts.max() == 1:
        batch.channels = None
        return batch
    if counts.min() != counts.max():
        raise ValueError(
            f"--channel each needs files with the same number of channels, but "
            f"these have between {counts.min()} and {counts.max()}; pass "
            "--channel mean or a channel index."
        )
    first = np.arange(0, len(batch), counts[0])
    batch.waves = batch.waves.reshape(len(first), counts[0], -1)
    batch.paths = [batch.paths[i] for i in first]
    batch.indices = batch.indices[first]
    batch.lengths = batch.lengths[first]
    batch.channels = None
    report.info(f"{counts[0]} channels per file, each kept (--channel each)")
    return batch


def _load_clips(
    paths: Sequence[str],
    detector: AnomalousSoundDetector,
    skip_bad: bool,
    report: _Reporter,
    channel: str | int = "mean",
) -> Any:
    """Load clips the way the model was trained: its rate and clip length."""
    n_samples = int(detector.n_features_in_)
    rate = int(getattr(detector, "sample_rate_", detector.sample_rate))
    report.info(
        f"loading {len(paths)} audio file(s) at {rate} Hz, "
        f"{n_samples / rate:.2f} s per clip"
    )
    batch = _load_files(
        paths,
        sample_rate=rate,
        n_samples=n_samples,
        skip_bad=skip_bad,
        channel=channel,
        report=report,
    )
    _report_skipped(batch, report)
    changed = int(np.sum(batch.lengths != n_samples))
    if changed:
        report.info(
            f"{changed} clip(s) zero-padded or cut to the model's clip length "
            f"({n_samples} samples)"
        )
    return batch


# ----------------------------------------------------------------- commands
def _audio_files(folder: Path, recursive: bool) -> list[Path]:
    """Audio files of ``folder`` (and below, when ``recursive``), sorted by path.

    Files under a folder named like anomalies (``abnormal``, ``anomaly``) are
    left out: they are not normal clips to train on.
    """
    pattern = "**/*" if recursive else "*"
    found = []
    for f in folder.glob(pattern):
        folders = {part.lower() for part in f.relative_to(folder).parts[:-1]}
        if (
            f.is_file()
            and f.name.lower().endswith(AUDIO_SUFFIXES)
            and not folders & _ANOMALY_FOLDERS
        ):
            found.append(f)
    return sorted(found)


#: Folder names whose clips are never taken as normal training clips.
_ANOMALY_FOLDERS = {"abnormal", "anomaly", "anomalous"}


def _folder_training_clips(
    data_dir: Path, recursive: bool, report: _Reporter
) -> tuple[list[str], list[str], str]:
    """Normal clips of a plain or MIMII-style folder: (paths, IDs, machine type).

    A folder with audio files of its own is one machine (its name is the
    ID, or its parent's when it is called ``normal``; clips with DCASE
    names keep their IDs); otherwise each sub-folder with audio (in its
    ``normal/`` folder if it has one) is a machine ID, as in MIMII's
    ``fan/id_00/normal/``.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(f"The training folder '{data_dir}' does not exist.")
    own = _audio_files(data_dir, recursive=False)
    if own:
        name = data_dir.resolve()
        if name.name.lower() == "normal" and name.parent.name:
            name = name.parent
        files = _audio_files(data_dir, recursive) if recursive else own
        paths, ids = [], []
        for f in files:
            try:
                parsed = parse_dcase_filename(f.name)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.get("is_anomaly") == 1:
                continue  # an anomaly_ clip, named as such
            paths.append(str(f))
            ids.append(str(parsed["machine_id"]) if parsed else name.name)
        machine_type = name.parent.name if name != data_dir.resolve() else name.name
        layout = "a plain folder"
    else:
        paths, ids = [], []
        for sub in sorted(d for d in data_dir.iterdir() if d.is_dir()):
            if sub.name.lower() in _ANOMALY_FOLDERS:
                continue
            normal = sub / "normal"
            files = _audio_files(normal if normal.is_dir() else sub, recursive)
            paths += [str(f) for f in files]
            ids += [sub.name] * len(files)
        machine_type = data_dir.resolve().name
        layout = "one sub-folder per machine ID"
    if not paths:
        raise ValueError(
            f"No normal audio files ({', '.join(AUDIO_SUFFIXES)}) in '{data_dir}'"
            + ("" if recursive else " or its sub-folders' normal/ folders")
            + "; use --recursive to search deeper, or --machine-type for a DCASE "
            "dataset folder."
        )
    report.info(
        f"{data_dir}: {len(paths)} normal clip(s) of {len(set(ids))} machine ID(s) "
        f"({', '.join(sorted(set(ids)))}), {layout}"
    )
    return paths, ids, machine_type


def _dcase_training_clips(
    args: argparse.Namespace, data_dir: Path, fraction: float, report: _Reporter
) -> tuple[list[str], list[str], str | None]:
    """Normal training clips of a DCASE folder: (paths, IDs, naming scheme)."""
    data = load_dcase(data_dir, args.machine_type, split=args.split, return_paths=True)

    # The train split holds normal clips only, whatever their names say;
    # in the test split only clips labelled normal may be trained on.
    labels = np.asarray(data.is_anomaly)
    usable = labels != 1 if args.split == "train" else labels == 0
    by_id: dict[str, list[str]] = {}
    for path, machine_id, ok in zip(data.paths, data.machine_ids, usable, strict=True):
        if ok:
            by_id.setdefault(str(machine_id), []).append(path)
    if not by_id:
        raise ValueError(
            f"No normal clips of '{args.machine_type}' in the {args.split} split "
            f"of '{data_dir}'; train on a folder with normal_ clips."
        )
    paths, ids = _first_fraction(
        [p for m in sorted(by_id) for p in by_id[m]],
        [m for m in sorted(by_id) for _ in by_id[m]],
        fraction,
    )
    n_normal = sum(len(v) for v in by_id.values())
    report.info(
        f"{args.machine_type}: {n_normal} normal clip(s) of {len(by_id)} machine "
        f"ID(s) ({', '.join(sorted(by_id))}) in the {args.split} split; "
        f"training on {len(paths)}"
        + ("" if fraction == 1.0 else f" (the first {fraction:g} of each ID)")
    )
    return paths, ids, data.scheme


def _first_fraction(
    paths: list[str], ids: list[str], fraction: float
) -> tuple[list[str], list[str]]:
    """The first ``fraction`` of each machine ID's clips, by sorted file name."""
    by_id: dict[str, list[str]] = {}
    for path, machine_id in zip(paths, ids, strict=True):
        by_id.setdefault(machine_id, []).append(path)
    kept_paths: list[str] = []
    kept_ids: list[str] = []
    for machine_id in sorted(by_id):
        clips = sorted(by_id[machine_id], key=lambda p: Path(p).name)
        # The small epsilon keeps 0.7 * 10 from flooring to 6.
        k = min(len(clips), max(1, math.floor(fraction * len(clips) + 1e-9)))
        kept_paths += clips[:k]
        kept_ids += [machine_id] * k
    return kept_paths, kept_ids


def _cmd_train(args: argparse.Namespace, report: _Reporter) -> int:
    data_dir = Path(args.data_dir)
    fraction = args.train_fraction
    if fraction is None:
        fraction = 1.0 if args.split == "train" else 0.5
    scheme: str | None = None
    if args.machine_type is not None:
        machine_type = args.machine_type
    else:
        # The default output name needs the machine type; listing the
        # folder is cheap, and its errors come before any training.
        paths, ids, machine_type = _folder_training_clips(
            data_dir, args.recursive, report
        )
        if fraction < 1.0:
            paths, ids = _first_fraction(paths, ids, fraction)
    output = Path(args.output or f"{machine_type}{MODEL_SUFFIX}")
    # Checked before hours of training, not after.
    if output.exists() and not args.force:
        raise FileExistsError(
            f"The model file '{output}' already exists; pass --force to overwrite "
            "it or choose another -o."
        )
    _check_output(output, "-o")
    if args.machine_type is not None:
        paths, ids, scheme = _dcase_training_clips(args, data_dir, fraction, report)
    # Headers first (cheap): bad files fail or are skipped before anything
    # is decoded, and the clip length is the median, so one odd file (a
    # 1-hour recording) cannot set every clip's length.
    good, lengths, bad = _probe_files(paths, args.sample_rate)
    if bad and not args.skip_bad:
        raise bad[0][1]
    if not good:
        raise ValueError(f"none of the {len(paths)} training files could be read")
    n_samples = max(1, int(np.median(lengths)))
    stream = len(good) * n_samples * 4 > STREAM_BYTES
    if stream and args.channel != "mean":
        raise ValueError(
            f"{len(good)} clips are too many to hold in memory, so they are read "
            f"from their files as the mean of their channels; --channel "
            f"{args.channel} needs them in memory: pass --channel mean, or train "
            "on fewer clips (--train-fraction)."
        )
    if stream:
        # Too many clips to hold in memory: the detector reads them from the
        # files batch by batch (headers were checked above; it pads or cuts
        # them to the median length itself).
        training_paths = [paths[i] for i in good]
        for i, exc in bad:
            report.warn(f"skipped {_printable(paths[i])}: {exc.reason}")
        report.info(
            f"streaming {len(training_paths)} clip(s) from their files "
            f"(more than {STREAM_BYTES / 2**30:.0f} GiB as float32)"
        )
        train_ids = [ids[i] for i in good]
        X: Any = training_paths
        lengths_arr = np.asarray(lengths)
    else:
        batch = _load_files(
            [paths[i] for i in good],
            sample_rate=args.sample_rate,
            n_samples=n_samples,
            skip_bad=args.skip_bad,
            channel=args.channel,
            report=report,
        )
        batch.skipped[:0] = [SkippedFile(paths[i], exc.reason) for i, exc in bad]
        _report_skipped(batch, report)
        train_ids = [ids[good[i]] for i in batch.indices.tolist()]
        training_paths = batch.paths
        X = batch.waves
        lengths_arr = batch.lengths
    extra_fit = _names_metadata(args, training_paths, report)
    odd = int(np.sum((lengths_arr > 2 * n_samples) | (2 * lengths_arr < n_samples)))
    if np.any(lengths_arr != n_samples):
        report.info(
            f"clips of different lengths zero-padded or cut to the median length "
            f"({n_samples / args.sample_rate:.2f} s)"
            + (f"; {odd} differ from it by more than 2x" if odd else "")
        )

    detector = AnomalousSoundDetector(
        loss=args.loss,
        scoring=args.scoring,
        sample_rate=args.sample_rate,
        n_mels=args.n_mels,
        recipe=args.recipe,
        crop_seconds=args.crop_seconds,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        random_state=args.seed,
        verbose=0 if getattr(args, "quiet", False) else (2 if args.verbose else 1),
    )
    from sk_asd.estimator.detector import resolve_device

    report.info(
        f"training on {len(train_ids)} clip(s) of "
        f"{n_samples / args.sample_rate:.2f} s, "
        + (
            "epochs from the data size"
            if args.epochs == "auto"
            else f"{args.epochs} epoch(s)"
        )
        + f", on {resolve_device(args.device)}"
    )
    start = time.perf_counter()
    # skorch prints its epoch table to stdout; progress belongs on stderr.
    with contextlib.redirect_stdout(sys.stderr):
        detector.fit(X, train_ids, **extra_fit)
    report.info(
        f"trained {detector.max_epochs_} epoch(s) in "
        f"{time.perf_counter() - start:.1f} s"
    )

    # Atomic: an interrupted save leaves an existing file as it was.
    save_model(
        detector,
        output,
        machine_type=machine_type,
        training_paths=training_paths,
        data_dir=data_dir,
        extra={
            # No DCASE split for a plain or MIMII-style folder.
            "split": args.split if args.machine_type is not None else None,
            "train_fraction": fraction,
            "naming_scheme": scheme,
        },
    )
    report.info(f"saved model to {output}")
    return 0


def _names_metadata(
    args: argparse.Namespace, paths: Sequence[str], report: _Reporter
) -> dict[str, Any]:
    """``attributes`` and ``domains`` for ``fit``, read off DCASE 2021+ names.

    Attributes are used when every clip's name carries them (2022+), domains
    when some clip is a target-domain one; plain and MIMII folders have
    neither.
    """
    if args.machine_type is None:
        return {}
    info = [parse_dcase_filename(Path(p).name) for p in paths]
    extra: dict[str, Any] = {}
    attributes = [i.get("attributes") for i in info]
    if not args.no_attributes and all(attributes):
        n_classes = len(set(zip((i["machine_id"] for i in info), attributes)))
        report.info(
            f"training on {n_classes} machine x attribute class(es) from the file "
            "names (--no-attributes: machine IDs only)"
        )
        extra["attributes"] = attributes
    domains = [i.get("domain") for i in info]
    if not args.no_domains and "target" in domains:
        report.info(
            f"{domains.count('target')} target-domain clip(s) kept whole as "
            "neighbours (--no-domains: pooled with the source clips)"
        )
        extra["domains"] = domains
    return extra


def _cmd_score(args: argparse.Namespace, report: _Reporter) -> int:
    _check_output(args.csv, "--csv")
    detector = load_model(args.model, trust_pickle=args.trust_pickle)
    if args.scoring is not None:
        detector.set_params(scoring=args.scoring)
    files = _expand_inputs(args.inputs, recursive=args.recursive)
    batch = _load_clips(files, detector, args.skip_bad, report, args.channel)
    ids, sources = _ids_from_names(detector, batch.paths, args.machine_id)
    n_best = sources.count("best-match")
    report.info(
        f"scoring {len(batch)} clip(s)"
        + (f"; {n_best} against their best-matching machine ID" if n_best else "")
    )
    anomaly, used, decisions = _score_clips(detector, batch.waves, ids, report=report)
    assert decisions is not None
    _report_non_finite(anomaly, batch.paths, report)
    header = ["path", "machine_id", "anomaly_score", "decision", "machine_id_source"]
    if args.csv is not None:
        rows = [
            [_printable(p), str(m), repr(float(s)), _decision_text(d), src]
            for p, m, s, d, src in zip(
                batch.paths, used, anomaly, decisions, sources, strict=True
            )
        ]
        _write_csv(args.csv, header, rows)
        if args.csv != "-":
            report.info(f"wrote {len(rows)} row(s) to {args.csv}")
    else:
        rows = [
            # Six significant digits: k-means scores lie near 1e-4, where a
            # fixed number of decimals would print 0.0000.
            [_printable(p), str(m), f"{s:.6g}", _decision_text(d), src]
            for p, m, s, d, src in zip(
                batch.paths, used, anomaly, decisions, sources, strict=True
            )
        ]
        print(_format_table(header, rows))
    n_anomalous = int(np.sum(decisions == -1))
    report.info(
        f"{len(batch)} clip(s) scored: {n_anomalous} anomalous, "
        f"{len(batch) - n_anomalous} normal"
        + (f"; {len(batch.skipped)} skipped" if batch.skipped else "")
    )
    return 0


def _training_filter(
    metadata: dict[str, Any], data_dir: Path
) -> Callable[[str], bool] | None:
    """A test ``path -> was it a training clip?``; None if none are recorded.

    Paths match when they are the same file relative to the dataset folder
    (how ``sk-asd train`` records them, so a dataset moved or mounted
    elsewhere after training is still recognised), or the same absolute file
    (models saved from Python without ``data_dir``, and sk_asd 0.1 files).
    """
    recorded = metadata.get("training_paths")
    if not recorded:
        return None
    if metadata.get("training_paths_relative"):
        absolute: set[str] = set()
        relative = {Path(p).as_posix() for p in recorded}
    else:
        absolute = {str(Path(p).resolve()) for p in recorded}
        relative = set()
    trained_root = metadata.get("data_dir")
    if trained_root and not metadata.get("training_paths_relative"):
        for p in recorded:
            with contextlib.suppress(ValueError):
                relative.add(Path(p).relative_to(trained_root).as_posix())
    root = data_dir.resolve()

    def was_trained_on(path: str) -> bool:
        resolved = Path(path).resolve()
        if str(resolved) in absolute:
            return True
        try:
            return resolved.relative_to(root).as_posix() in relative
        except ValueError:
            return False

    return was_trained_on


def _cmd_evaluate(args: argparse.Namespace, report: _Reporter) -> int:
    from sk_asd.metrics import dcase2020_table, dcase2021_table, official_layout

    if args.plot is not None:
        _require_matplotlib()
    for path, option in (
        (args.csv, "--csv"),
        (args.scores_csv, "--scores-csv"),
        (args.plot, "--plot"),
    ):
        _check_output(path, option)
    detector, metadata = load_model(
        args.model, return_metadata=True, trust_pickle=args.trust_pickle
    )
    if args.scoring is not None:
        detector.set_params(scoring=args.scoring)
    recorded_type = metadata.get("machine_type")
    machine_type = args.machine_type or recorded_type
    if not machine_type:
        raise ValueError(
            f"The model file '{args.model}' records no machine type; pass "
            "--machine-type."
        )
    if recorded_type and machine_type != recorded_type:
        report.warn(
            f"warning: the model was trained on '{recorded_type}' clips but is "
            f"evaluated on '{machine_type}'"
        )
    data_dir = Path(args.data_dir)
    data = load_dcase(
        data_dir,
        machine_type,
        split=args.split,
        year=args.year,
        return_paths=True,
        labels=args.labels,
        domains=args.domains,
    )
    unused = data.get("unused_ground_truth") or []
    if unused:
        report.info(
            f"{len(unused)} row(s) of the ground truth name no clip of this "
            f"folder (e.g. {unused[0]}); other sections or machine types"
        )
    keep = np.asarray(data.is_anomaly) >= 0
    n_unlabelled = int(np.sum(~keep))
    if n_unlabelled:
        report.info(f"left out {n_unlabelled} clip(s) without a normal/anomaly label")

    was_trained_on = _training_filter(metadata, data_dir)
    if was_trained_on is None:
        report.warn(
            "warning: the model file records no training files, so no clips are "
            "excluded; if it was trained on clips of this folder the scores are "
            "optimistic"
        )
        n_excluded = 0
    else:
        trained = np.array([was_trained_on(p) for p in data.paths], dtype=bool)
        n_excluded = int(np.sum(trained & keep))
        keep &= ~trained
        report.info(f"excluded {n_excluded} clip(s) the model was trained on")
    if not keep.any():
        hint = (
            f"; {n_unlabelled} clip(s) have no normal/anomaly label in their names: "
            "pass the ground truth with --labels FILE"
            if n_unlabelled
            else ""
        )
        raise ValueError(
            f"No labelled clips left to evaluate in the {args.split} split of "
            f"'{data_dir / machine_type}' ({n_excluded} excluded as training "
            f"clips){hint}."
        )
    selected = np.flatnonzero(keep)
    paths = [data.paths[i] for i in selected]
    batch = _load_clips(paths, detector, args.skip_bad, report, args.channel)
    rows = selected[batch.indices]

    # Group by the IDs in the file names; score against them when the model
    # knows them, otherwise against the best-matching ID.
    name_ids = [str(m) for m in np.asarray(data.machine_ids)[rows]]
    known = _known_ids(detector)
    score_ids = [known.get(m) for m in name_ids]
    unknown = sorted({m for m in name_ids if m not in known})
    if unknown:
        report.warn(
            f"warning: machine ID(s) {unknown} are unknown to the model (trained on "
            f"{sorted(known)}); their clips are scored against the best match"
        )
    report.info(f"scoring {len(batch)} clip(s)")
    anomaly, used, decisions = _score_clips(
        detector,
        batch.waves,
        score_ids,
        with_decisions=args.scores_csv is not None,
        report=report,
    )
    _report_non_finite(anomaly, batch.paths, report)
    if not np.isfinite(anomaly).all():
        raise ValueError(
            "Cannot compute AUC/pAUC with NaN or infinite anomaly scores (files "
            "listed above); fix or remove those files."
        )
    labels = np.asarray(data.is_anomaly)[rows]
    types = [machine_type] * len(rows)
    year = 2023 if args.year is None else args.year
    if data.scheme == "2020":
        table = dcase2020_table(labels, anomaly, types, name_ids)
    else:
        domains = list(np.asarray(data.domain)[rows])
        no_domain = [p for p, d in zip(batch.paths, domains, strict=True) if d is None]
        if no_domain:
            raise ValueError(
                f"{len(no_domain)} clip(s) have no domain in their names (e.g. "
                f"{Path(no_domain[0]).name}), which the 2021+ scores need; pass "
                "--labels with a domain column (filename,label,domain), the "
                "organisers' ground_truth_attributes file, or --domains with "
                "their ground_truth_domain file."
            )
        table = dcase2021_table(
            labels,
            anomaly,
            types,
            [str(s) for s in np.asarray(data.section)[rows]],
            domains,
            year=year,
        )
    n_anomalous = int(np.sum(labels == 1))
    report.info(
        f"evaluated {len(rows)} clip(s): {len(rows) - n_anomalous} normal, "
        f"{n_anomalous} anomalous"
    )
    if data.scheme != "2020" and year >= 2022:
        print(official_layout(table))
        print(f"official score: {100.0 * table['score']:.2f}")
    else:
        print(table)

    if args.csv is not None:
        header = [*table.key_names, *table.columns]
        table_rows = [[row.get(c, "") for c in header] for row in table.rows]
        _write_csv(args.csv, header, table_rows)
    if args.scores_csv is not None:
        assert decisions is not None
        clip_rows = [
            [_printable(p), m, str(u), int(y), repr(float(s)), _decision_text(d)]
            for p, m, u, y, s, d in zip(
                batch.paths, name_ids, used, labels, anomaly, decisions, strict=True
            )
        ]
        _write_csv(
            args.scores_csv,
            [
                "path",
                "machine_id",
                "scored_as",
                "is_anomaly",
                "anomaly_score",
                "decision",
            ],
            clip_rows,
        )
    if args.plot is not None:
        title = f"{machine_type}, {args.split} split: ROC per machine ID"
        _save_roc_plot(args.plot, labels, anomaly, name_ids, title=title)
        report.info(f"saved ROC curves to {args.plot}")
    return 0


def _require_matplotlib() -> None:
    """Fail before any work, in one line, when --plot lacks matplotlib."""
    from sk_asd.plotting import INSTALL_HINT, require_matplotlib

    try:
        require_matplotlib()
    except ImportError as exc:
        # A ValueError is what main() reports as one line.
        raise ValueError(
            f"--plot needs matplotlib, which is not installed; install it with: "
            f"{INSTALL_HINT}"
        ) from exc


def _save_roc_plot(
    path: str, labels: np.ndarray, anomaly: np.ndarray, ids: list[str], title: str
) -> None:
    """Save the per-machine ROC figure; no display needed (no pyplot)."""
    from matplotlib.figure import Figure

    from sk_asd.plotting import plot_roc

    figure = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = plot_roc(labels, anomaly, ids, ax=figure.add_subplot())
    ax.set_title(title)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)


def _cmd_demo(args: argparse.Namespace, report: _Reporter) -> int:
    from sk_asd.cli.demo import run_demo

    # Only options the user gave are passed, so run_demo's defaults apply.
    kwargs: dict[str, Any] = {"quick": args.quick}
    if args.epochs is not None:
        kwargs["epochs"] = args.epochs
    if args.seed is not None:
        kwargs["seed"] = args.seed
    return int(run_demo(**kwargs) or 0)


# -------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the ``sk-asd`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 when the command failed (one line
        ``sk-asd: error: <reason>`` on stderr), 2 for invalid arguments,
        130 when interrupted.

    Examples
    --------
    >>> status = main(["--version"])  # doctest: +ELLIPSIS
    sk-asd ...
    >>> status
    0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    # Without a command (``--help``, ``--version``, a usage error) the
    # parser needs no options of the commands, and so no torch.
    parser = build_parser(commands_only=not set(argv) & set(COMMANDS))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help, --version and usage errors end in SystemExit; return its
        # status so that callers in Python get an int, as documented.
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    report = _Reporter(quiet=args.quiet)
    try:
        _import_runtime()  # after parsing: --help and usage errors need no torch
        return args.handler(args, report)
    except BrokenPipeError:
        # The reader went away (``sk-asd score ... | head``): not an error
        # worth a message. Caught before REPORTED_ERRORS, which holds OSError.
        # stdout is pointed at devnull so the interpreter's final flush does
        # not raise again (the recipe in Python's signal module docs).
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except REPORTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: error: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
