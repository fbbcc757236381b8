import src.config_resolvers  # noqa: F401  (registers ${not:...} for conf/)
