"""Neural networks: layers, architectures, losses, the tf.data feed and fitting.

Kept free of imports so that ``pipeline.nn.feed`` or ``pipeline.nn.fit`` stay cheap to import;
to load a saved ``model.keras``, import ``pipeline.nn.layers`` (it registers every custom
layer); ``pipeline.nn.losses`` registers the loss, needed only to load a model compiled.
"""
