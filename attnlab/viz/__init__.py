"""Looking at attention: the seed's steps as text (the worked example and one head of a trained
model), attention heatmaps, and the model wrapper that exposes a tagger's attention."""
