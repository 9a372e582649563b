"""Switch off JupyterLab's news prompt and update check for the running Python's environment.

Copies ``jupyter/overrides.json`` (the front end's defaults: never fetch news, never check for
updates) into JupyterLab's application settings directory, merged with any overrides already
there, and ``jupyter/jupyter_server_config.json`` (the server side: no news URL, no update
checker) into the environment's ``etc/jupyter/jupyter_server_config.json`` (LabApp reads its
options from that file, not from the ``.d`` directory), merged likewise. ``make`` runs it for
``.venv``; Binder's ``postBuild`` runs it for the image's environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jupyterlab.commands import get_app_dir

SOURCE = Path(__file__).resolve().parents[1] / "jupyter"


def _merge_json(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(target.read_text()) if target.exists() else {}
    for section, values in json.loads(source.read_text()).items():
        merged.setdefault(section, {}).update(values)
    target.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {target}")


def main() -> None:
    _merge_json(SOURCE / "overrides.json", Path(get_app_dir()) / "settings" / "overrides.json")
    _merge_json(SOURCE / "jupyter_server_config.json",
                Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json")


if __name__ == "__main__":
    main()
