"""The pipeline core every runtime shares (see :mod:`fraudstream.services.pipeline.core`)."""
