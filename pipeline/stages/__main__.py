from pipeline.stages import app

app(prog_name="python -m pipeline.stages")
