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
tracer = Tracer(service=SERVICE)
