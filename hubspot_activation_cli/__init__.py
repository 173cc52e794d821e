"""`hubspot-activation`: the operator's command line for a deployed (or local) hubspot-activation API.

Installed with the project (``pip install -e .``), never part of the Lambda layer: it only speaks
HTTP to the API, so it needs nothing of the runtime library.
"""
