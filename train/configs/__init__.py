"""Training configs for ``spotter train --config NAME.yaml`` (package data: ``importlib.resources.files("spotter.configs")``)."""
