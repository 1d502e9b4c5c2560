# Production image: what `make run` does, in production mode (no moto, no demo users).
# Dependencies come from requirements/runtime.txt (the portal + the saml and sentry extras), at
# exactly the versions and hashes CI tested; the project itself is installed without them.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# xmlsec (SAML signatures) is built here, and lxml with it, against Debian's libxml2: xmlsec refuses
# to load when lxml carries another libxml2 than its own.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc pkg-config libxml2-dev libxslt1-dev \
      libxmlsec1-dev libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --require-hashes --no-binary lxml,xmlsec -r /tmp/runtime.txt
WORKDIR /app
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY secrets_admin ./secrets_admin
RUN pip install --no-deps .
# Every extra the image ships must load, or the build fails (never the first SAML sign-in).
RUN python -c "import lxml.etree, xmlsec, onelogin.saml2.auth, sentry_sdk, prometheus_client, pythonjsonlogger"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxml2 libxslt1.1 libxmlsec1 libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /venv /venv
WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY portal ./portal
COPY secrets_admin ./secrets_admin
COPY templates ./templates
COPY static ./static
COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py
RUN python -c "import xmlsec, onelogin.saml2.auth"

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
# Metrics: the workers share their counters in this directory (prometheus-client multiprocess
# mode); deploy/gunicorn.conf.py empties it at start. Logs: one JSON line per request on stdout.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
CMD ["gunicorn", "portal.wsgi:application", "-c", "deploy/gunicorn.conf.py"]
