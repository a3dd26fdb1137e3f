"""The jaxcomp workflow: TOML-configured runs, stages and their report."""
