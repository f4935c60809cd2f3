"""Looking at attention: the seed's steps as text (the worked example and one head of a trained
model), attention heatmaps, the model wrapper that exposes a tagger's attention, and ``show``:
the explorer inline in a notebook."""

from .notebook import show

__all__ = ["show"]
