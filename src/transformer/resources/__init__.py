"""Package data: ``demo.toml``, the settings of ``transformer demo`` (read with ``importlib.resources``)."""
