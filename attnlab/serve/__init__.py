"""The attention explorer: a JSON API and a page served locally (``attnlab serve``)."""
