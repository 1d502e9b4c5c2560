"""What operators see of a running portal: request and audit log lines, Prometheus metrics, and
error reports to Sentry. None of it ever carries a secret value (values live only in Secrets Manager).

* :mod:`.logs`: one line per request and per audit event (JSON in production, text in the demo
  and tests); tracebacks without exception messages or local variables.
* :mod:`.metrics`: the ``/metrics`` endpoint (``PORTAL_METRICS_TOKEN``) and its counters.
* :mod:`.sentry`: optional error reporting (``SENTRY_DSN``), scrubbed before sending.
"""
