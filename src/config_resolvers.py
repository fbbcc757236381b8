"""OmegaConf resolvers used by conf/ (registered on import of the package)."""

from omegaconf import OmegaConf

if not OmegaConf.has_resolver("not"):
    OmegaConf.register_new_resolver("not", lambda value: not value)
