# One image for the web app and the workers: `docker run IMAGE web|worker|migrate|sweep`.
FROM python:3.13-slim-bookworm

# Production mode: the settings refuse to start without a real DJANGO_SECRET_KEY (50+ random
# characters) or with DEBUG on; https, HSTS and secure cookies are on (see the README).
ENV DJANGO_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROMETHEUS_MULTIPROC_DIR=/app/var/prometheus

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Collecting static files needs settings but no secret: a throwaway key, outside production mode.
RUN DJANGO_ENV=build DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --create-home --uid 10001 app \
    && mkdir -p var/prometheus \
    && chown -R app:app var

USER app
EXPOSE 8000
ENTRYPOINT ["scripts/entrypoint"]
CMD ["web"]
