# Production image: what `make run` does, in production mode (no moto, no demo users).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY portal ./portal
COPY secrets_admin ./secrets_admin
RUN pip install --no-cache-dir '.[saml]' || pip install --no-cache-dir .
COPY manage.py ./
COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py
COPY templates ./templates
COPY static ./static

# collectstatic needs settings to load; these build-time placeholders never reach runtime.
RUN SECRET_KEY=build-only PORTAL_FINGERPRINT_KEY=build-only ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput -v0

RUN useradd --system --uid 10001 --home /app portal && chown -R portal /app/staticfiles
USER portal

EXPOSE 8000
# Settings come from the environment (README: SECRET_KEY, PORTAL_FINGERPRINT_KEY, DATABASE_URL,
# CACHE_URL, ALLOWED_HOSTS, AWS_REGION, SSO variables). Run migrations as a release step:
#   docker run --env-file prod.env IMAGE python manage.py migrate
# Metrics: the workers share their counters in this directory (prometheus-client multiprocess
# mode); deploy/gunicorn.conf.py empties it at start. Logs: one JSON line per request on stdout.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
CMD ["gunicorn", "portal.wsgi:application", "-c", "deploy/gunicorn.conf.py"]
