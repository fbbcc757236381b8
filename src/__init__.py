import src.config  # noqa: F401  (registers the ${not:...} resolver used by conf/)
