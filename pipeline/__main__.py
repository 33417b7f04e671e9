"""`python -m pipeline`: the CLI from the working tree (what dvc.yaml's stages call)."""

from pipeline.cli import app

app(prog_name="audiorecon")
