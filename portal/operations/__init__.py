"""Running the central server: readiness, Prometheus metrics, request ids and JSON logs."""
