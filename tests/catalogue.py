"""The defaults block the unit tests' manifests start from (a PNG still, a 36-frame turntable)."""

from __future__ import annotations

DEFAULTS = """\
defaults:
  imageWidth: 1200
  imageHeight: 1200
  imageFormat: PNG
  turntable:
    includeGif: false
    imageCount: 36
    frameRate: 12
    width: 720
    height: 720
"""
