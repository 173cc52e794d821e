"""One Logger and one Metrics instance for the whole library (powertools, configured by env vars)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "hubspot-activation")

logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "HubSpotActivation"), service=SERVICE
)
