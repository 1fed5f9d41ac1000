"""The API's routers, one module per resource (scores, alerts, health and metrics)."""
