"""The shipped models (package data of the installed spotter: ``importlib.resources.files("spotter.checkpoints")``)."""
