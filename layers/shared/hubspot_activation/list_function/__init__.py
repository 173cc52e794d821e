"""The lists function's AWS side: its Lambda events and the SQS timers (``adapter``), and its
composition root (``wiring``), around the lists domain package (``lists``), which knows neither."""
