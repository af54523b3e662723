"""Open a phy export in phy's template GUI, select clusters and save a screenshot; exits
non-zero on any error phy logs or raises. Run in its own process (Qt owns it):
``QT_QPA_PLATFORM=offscreen python tests/phy_gui.py PHY_FOLDER SCREENSHOT.png``."""
import logging
import sys
from pathlib import Path

from phy.apps.template import TemplateController
from phy.gui.qt import _wait, create_app, screenshot
from phylib.io.model import load_model

errors = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.ERROR:
            errors.append(self.format(record))


def main(folder: Path, png: Path) -> int:
    for name in ("phy", "phylib"):
        logging.getLogger(name).addHandler(Collect())
    sys.excepthook = lambda *exc: errors.append(repr(exc[1]))
    create_app()
    model = load_model(folder / "params.py")
    controller = TemplateController(model=model, dir_path=folder, clear_cache=True)
    gui = controller.create_gui()
    gui.show()
    _wait(1000)
    views = sorted(type(v).__name__ for v in gui.views)
    clusters = list(model.cluster_ids)
    for c in clusters[:3] + clusters[-1:]:
        controller.supervisor.select([c])
        _wait(400)
    controller.supervisor.select(clusters[:2])
    _wait(800)
    screenshot(gui, png)
    gui.close()
    model.close()
    print("views:", ", ".join(views))
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
