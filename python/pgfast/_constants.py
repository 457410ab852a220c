"""Constants shared by several modules; a leaf that imports nothing from the package."""

from __future__ import annotations

PAD_INDEX = -1
"""Value of ``states`` and ``actions`` at positions past an episode's end (rewards are 0.0)."""
