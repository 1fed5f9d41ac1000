"""Where results go: alert stores and dead-letter sinks."""
