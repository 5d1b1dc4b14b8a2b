"""Image files checked before anyone trains on them (issue 18): the data rule opens every
listed image -- header, size and, for PNG, every chunk's CRC, which catches a truncated file --
and refuses the folder naming the bad ones; `clrepro data --check --decode` decodes them all
(truncated JPEG data shows only then). A file that still fails to decode during a run names
itself and the fix instead of PIL's bare "Truncated File Read"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from clrepro.data.sources import ChecksumError

SHOW = 10  # bad files named in a message
FIX = ("replace them with intact copies (or delete the benchmark's results/data files and "
       "prepare it again after restoring the folder); `clrepro data --check --decode` lists "
       "every image that does not decode")


class BadImageError(ChecksumError):
    """An image file is empty, not an image, or its data is damaged."""


def problem(path: Path, decode: bool = False) -> str | None:
    """Why `path` is not a usable image, or None."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            if decode:
                im.load()  # the whole image: truncated data fails here
            else:
                im.verify()  # the header; PNG: every chunk and its CRC
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... on bad data
        return f"{type(exc).__name__}: {exc}"
    return None


def find_bad(root: str | Path, paths: Sequence[str], decode: bool = False,
             workers: int = 8) -> list[tuple[str, str]]:
    """(path, why) of every listed image under `root` that is not usable, in list order."""
    root = Path(root)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while reading
        found = pool.map(lambda p: problem(root / p, decode), paths, chunksize=256)
        return [(str(root / p), why) for p, why in zip(paths, found) if why is not None]


def refuse(bad: list[tuple[str, str]], n_checked: int) -> None:
    if bad:
        shown = "\n  ".join(f"{p}: {why}" for p, why in bad[:SHOW])
        more = f"\n  ... and {len(bad) - SHOW} more" if len(bad) > SHOW else ""
        raise BadImageError(f"{len(bad)} of {n_checked} listed images are damaged:\n  {shown}{more}\n"
                            f"Fix: {FIX}.")


def check(root: str | Path, paths: Sequence[str], decode: bool = False) -> None:
    """Raise BadImageError naming the damaged images among `paths`."""
    paths = list(dict.fromkeys(paths))
    refuse(find_bad(root, paths, decode), len(paths))


def decode_failure(path: Path, exc: Exception) -> BadImageError:
    """The error for an image that fails to decode during a run."""
    return BadImageError(f"{path} cannot be decoded ({type(exc).__name__}: {exc}). Fix: "
                         f"{FIX}; then rerun (the run resumes from its checkpoint).")
