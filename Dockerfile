# One image for the web app and the workers: `docker run IMAGE web|worker|migrate|sweep`.
FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --create-home --uid 10001 app \
    && mkdir -p var \
    && chown -R app:app var

USER app
EXPOSE 8000
ENTRYPOINT ["scripts/entrypoint"]
CMD ["web"]
