"""Deployment artefacts built from the installed project (today: the AWS Lambda zip)."""
