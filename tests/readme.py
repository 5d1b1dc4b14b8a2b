"""Commands as README.md gives them, so that tests run what a user is told to type."""

import re
import shlex

from conftest import ROOT

README = ROOT / "README.md"


def section(title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def command(title: str, prefix: str) -> list[str]:
    """The first command of the section's bash blocks that starts with `prefix`, as argv:
    backslash continuations joined, the trailing comment dropped."""
    for block in re.findall(r"```bash\n(.*?)```", section(title), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(prefix):
                return shlex.split(line, comments=True)
    raise AssertionError(f"README section {title!r} has no command starting with {prefix!r}")
