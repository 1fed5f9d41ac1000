"""The Streamlit dashboard: live alerts, search, review and trends, read through the alert-store interface."""

from fraudstream.model.errors import require_installed

for _module in ("streamlit", "altair", "pandas"):  # the [dashboard] extra; checked, not imported (Streamlit runs it)
    require_installed(_module, "the dashboard")
