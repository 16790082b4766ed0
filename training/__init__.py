"""Command-line jobs: ``python -m training.train``, ``training.predict``, ``training.anchors``."""
