"""The person-search app (FastAPI + a plain HTML/JS page) over a gallery index; the entry point is ``src.serve``."""
