"""Render a raster with PyQGIS, headless, as QGIS would show it.

Usage: qgis_render.py RASTER OUTDIR NAME:XMIN,YMIN,XMAX,YMAX:WIDTHxHEIGHT ...

Opens RASTER as a QgsRasterLayer (GDAL provider, the renderer QGIS picks
for a new layer), renders each named extent to OUTDIR/NAME.png with
QgsMapRendererSequentialJob, and prints one JSON object on stdout:
{"init_s": ..., "open_s": ..., "renders": [{"name": ..., "seconds": ...}]}.
The first render is the first read of pixel data in this process.

Needs QT_QPA_PLATFORM=offscreen in the environment (no display).
"""

import json
import os
import sys
import time

t0 = time.monotonic()
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, outdir, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    app = QgsApplication([], False)
    app.initQgis()
    init_s = time.monotonic() - t0
    out = render(path, outdir, specs)
    out["init_s"] = init_s
    print(json.dumps(out), flush=True)
    # PyQGIS 3.22 can crash (SIGSEGV) while Python tears down after
    # exitQgis, once the work is done; leave without that teardown.
    app.exitQgis()
    os._exit(0)


def render(path, outdir, specs):
    """Opens the layer, renders each spec; returns the timings."""
    t = time.monotonic()
    layer = QgsRasterLayer(path, "raster", "gdal")
    if not layer.isValid():
        sys.exit("not a valid raster layer: %s: %s" % (path, layer.error().summary()))
    open_s = time.monotonic() - t
    renders = []
    for spec in specs:
        name, ext, size = spec.split(":")
        xmin, ymin, xmax, ymax = (float(v) for v in ext.split(","))
        w, h = (int(v) for v in size.split("x"))
        ms = QgsMapSettings()
        ms.setLayers([layer])
        ms.setDestinationCrs(layer.crs() if layer.crs().isValid() else QgsCoordinateReferenceSystem())
        ms.setExtent(QgsRectangle(xmin, ymin, xmax, ymax))
        ms.setOutputSize(QSize(w, h))
        ms.setOutputDpi(96)
        ms.setBackgroundColor(QColor(0, 0, 0))
        job = QgsMapRendererSequentialJob(ms)
        t = time.monotonic()
        job.start()
        job.waitForFinished()
        seconds = time.monotonic() - t
        for err in job.errors():
            sys.exit("render %s: %s: %s" % (name, err.layerID, err.message))
        img = job.renderedImage()
        out = os.path.join(outdir, name + ".png")
        if not img.save(out, "PNG"):
            sys.exit("cannot write " + out)
        renders.append({"name": name, "seconds": seconds, "width": img.width(), "height": img.height()})
    return {"open_s": open_s, "renders": renders}


main()
