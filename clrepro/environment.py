"""Problems of the machine rather than of the config or the code, said in one line with the fix:
a results directory that cannot be written, a full disk, a device that is not there."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

# bytes under which a failed write is blamed on the disk being full
FULL_DISK_BYTES = 16 << 20


class EnvironmentProblem(RuntimeError):
    """The machine cannot do what was asked; the message says what to change."""


def explain(exc: OSError) -> str:
    """One line for an OSError: what failed, on which file, and what to do."""
    where = exc.filename or "a file"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {where} ({exc.strerror}): make the results directory writable "
                f"or point `results` elsewhere (--set results=DIR, snakemake --config results=DIR)")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left writing {where} ({exc.strerror}): free some space or point "
                f"`results` at another disk (--set results=DIR, snakemake --config results=DIR)")
    return f"{exc.strerror or exc} ({where})" if exc.errno is not None else str(exc)


def full_disk_error(directory: Path, cause: BaseException) -> OSError | None:
    """An ENOSPC error naming `directory` when a write there failed on a (nearly) full disk
    (torch.save reports it as a RuntimeError), else None."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return None
    if free >= FULL_DISK_BYTES:
        return None
    return OSError(errno.ENOSPC, f"No space left on device ({free} bytes free; {cause})",
                   str(directory))
