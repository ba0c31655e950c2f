"""Running the example shell scripts as cron would: bash, this environment's ``bibev`` first on
the PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[2] / "examples"


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(script), *args],
        env={**os.environ, **env, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
