"""Looking inside a trained model: attention heatmaps and the seed's steps for one head."""
