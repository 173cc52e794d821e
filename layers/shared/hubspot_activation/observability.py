"""One Logger, one Metrics and one Tracer for the whole library (powertools, configured by env vars).

Traces never carry a token or an email: methods are traced with ``capture_response=False`` and
``capture_error=False`` (HubSpot's answers and error messages can quote email addresses), and
annotations hold only counts and names.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "hubspot-activation")

logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "HubSpotActivation"), service=SERVICE
)
# Only boto3 is patched here: X-Ray's default (patch_all) imports requests, sqlite3 and a dozen
# other libraries at cold start just to find out whether they exist. requests is patched by the
# one module that sends HTTP with it (hubspot.client), so a function that never calls HubSpot
# (ingest) does not load it.
tracer = Tracer(service=SERVICE, patch_modules=("boto3",))
