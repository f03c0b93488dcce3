"""Print constraints.txt for the running environment: its header comments, then ``pip freeze``.

fedpia itself and the packages of requirements-nodeps.txt (pinned there) are left out; a local
version label (``torch==2.13.0+cpu``) is dropped so the pin also matches PyPI's build.
Used by ``make constraints``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(line: str) -> str:
    return re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0].strip().lower().replace("_", "-")


def main() -> None:
    header = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.startswith("#")]
    nodeps = {_name(ln) for ln in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")}
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    pins = sorted((re.sub(r"\+[\w.]+$", "", ln) for ln in frozen
                   if "==" in ln and _name(ln) not in nodeps | {"fedpia"}), key=str.lower)
    sys.stdout.write("\n".join(header + pins) + "\n")


if __name__ == "__main__":
    main()
