"""crobot installs as one import package, and nothing in it leans on the checkout.

Tests run from the repository root, where the card's folders (`bot/`, `digests/`, …) are
importable as top-level names too; a stray `import digests` or `PackageLoader("digests")`
would pass there and fail in an install. So this imports every module, and renders what
loads package files, from a directory outside the checkout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import importlib, pkgutil, sys
import crobot
names = [m.name for m in pkgutil.walk_packages(crobot.__path__, "crobot.")
         if ".migrations." not in m.name and not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
from crobot.digests.render import environment
for template in environment().list_templates():
    environment().get_template(template)
from crobot.storage.migrate import current_head
assert current_head(), "no migration head"
generic = {"bot", "handlers", "services", "storage", "digests"} & set(sys.modules)
assert not generic, f"generic top-level modules imported: {sorted(generic)}"
print(len(names))
"""


def test_every_module_imports_from_outside_the_checkout(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 60
