"""Expected failures of the main command: one line each and an exit code per kind.

``tools/fit.py`` catches these (never a traceback for a problem the user can fix) and lists
the codes in ``--help``. An exception that is not here is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "NoUsableStudiesError",
    "ExitCode",
    "EXIT_CODES",
    "exit_code_for",
    "one_line",
    "exit_codes_help",
]


class NoUsableStudiesError(ValueError):
    """Segmentation or ROI placement left a split that training needs without any study."""


@dataclass(frozen=True)
class ExitCode:
    code: int
    error: str  # class name, as raised
    module: str  # where the class lives, imported lazily (the tool starts fast)
    meaning: str


# Most specific first: ImageTooLargeError is a RadiographReadError. Codes never change
# meaning, so scripts may test them; 1 stays Python's own (an unexpected error, a bug).
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(2, "ConfigError", "osteo.config", "bad config key, value or override"),
    ExitCode(3, "ManifestError", "osteo.data.manifest", "the manifest has problems"),
    ExitCode(4, "FileNotFoundError", "builtins", "a file the config names does not exist"),
    ExitCode(14, "ImageTooLargeError", "osteo.predict.image_checks", "an image is too large"),
    ExitCode(5, "RadiographReadError", "osteo.data.io", "a radiograph cannot be read"),
    ExitCode(
        6,
        "NoUsableStudiesError",
        "osteo.pipeline.errors",
        "segmentation/ROIs left train or val without a usable study",
    ),
    ExitCode(7, "RoiExtractionError", "osteo.radiomics.extractor", "radiomics failed on a ROI"),
    ExitCode(8, "MissingEntriesError", "osteo.radiomics.parallel", "radiomics store incomplete"),
    ExitCode(9, "EvaluationInputError", "osteo.evaluation.runs", "predictions cannot be evaluated"),
    ExitCode(10, "RunFolderError", "osteo.predict.trained_run", "a run folder is not usable"),
    ExitCode(11, "MaskError", "osteo.predict.masks", "a femur mask is not usable"),
    ExitCode(12, "InputError", "osteo.classification.inputs", "a prediction input is not usable"),
    ExitCode(13, "SweepError", "osteo.sweeps.spec", "a sweep file has problems"),
    ExitCode(
        15, "RunFolderBusyError", "osteo.pipeline.context", "another live run holds this name"
    ),
    ExitCode(16, "IdentifierKeyError", "osteo.privacy", "the pseudonym key cannot be read or made"),
    ExitCode(17, "MaskFormatError", "osteo.data.masks", "a femur mask is not a 0/1/2 label map"),
)
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def _error_class(entry: ExitCode) -> type[BaseException]:
    import importlib

    module = importlib.import_module(entry.module)
    return getattr(module, entry.error)


def exit_code_for(err: BaseException) -> ExitCode | None:
    """The table entry of ``err`` (by isinstance, most specific first), or None (a bug)."""
    if isinstance(err, KeyboardInterrupt):
        return ExitCode(INTERRUPTED, "KeyboardInterrupt", "builtins", "interrupted")
    for entry in EXIT_CODES:
        if isinstance(err, _error_class(entry)):
            return entry
    return None


def one_line(err: BaseException, limit: int = 400) -> str:
    """The error's message on one line: its first line, the next one folded in, a count."""
    lines = [line.strip(" -") for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[0].rstrip(":") + (f": {lines[1]}" if len(lines) > 1 else "")
    if len(lines) > 2:
        text += f" (and {len(lines) - 2} more)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exit_codes_help() -> str:
    """The epilog of ``tools/fit.py --help``: every exit code and what it means."""
    rows = [
        "exit codes:",
        "  0    the run finished",
        "  1    unexpected error (a bug: please report it with the traceback)",
    ]
    seen: dict[int, list[str]] = {}
    for entry in EXIT_CODES:
        seen.setdefault(entry.code, []).append(f"{entry.error}: {entry.meaning}")
    rows += [f"  {code:<4} {'; '.join(texts)}" for code, texts in sorted(seen.items())]
    rows.append(f"  {INTERRUPTED:<4} interrupted (Ctrl-C)")
    return "\n".join(rows)
