"""The Streamlit dashboard: live alerts, search, review and trends, read through the alert-store interface."""
