# Production image: what `make run` does, in production mode (no moto, no demo users).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY portal ./portal
COPY secrets_admin ./secrets_admin
RUN pip install --no-cache-dir '.[saml]' || pip install --no-cache-dir .
COPY manage.py ./
COPY templates ./templates
COPY static ./static

# collectstatic needs settings to load; these build-time placeholders never reach runtime.
# (Random: production settings refuse short or low-entropy keys.)
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    PORTAL_FINGERPRINT_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput -v0

RUN useradd --system --uid 10001 --home /app portal && chown -R portal /app/staticfiles
USER portal

EXPOSE 8000
# Settings come from the environment (README: SECRET_KEY, PORTAL_FINGERPRINT_KEY, DATABASE_URL,
# CACHE_URL, ALLOWED_HOSTS, AWS_REGION, SSO variables). Run migrations as a release step:
#   docker run --env-file prod.env IMAGE python manage.py migrate
# gunicorn takes its worker count from WEB_CONCURRENCY; the portal reads it too, and with more
# than one worker, `manage.py check` and `migrate` fail (portal.E002) without a shared CACHE_URL.
ENV WEB_CONCURRENCY=3
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--forwarded-allow-ips", "*", "--access-logfile", "-"]
