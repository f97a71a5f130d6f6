# CreditGuard: one image for the web server, the Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CREDITGUARD_ENV=production
WORKDIR /app

COPY pyproject.toml README.md ./
COPY creditguard creditguard
COPY tenants tenants
COPY metering metering
COPY policies policies
COPY notifications notifications
COPY console console
COPY portal portal
COPY billing billing
COPY templates templates
COPY locale locale
# gunicorn.conf.py: gunicorn reads the settings before booting workers (one clear line on
# a bad configuration); FORWARDED_ALLOW_IPS names the proxies it believes (README).
COPY gunicorn.conf.py manage.py ./
RUN pip install --no-cache-dir -e . \
    && SECRET_KEY=build-only-collectstatic-secret-key-0123456789 REDIS_URL=redis://build \
       WEBHOOK_SECRET_KEYS=YnVpbGQtb25seS1jb2xsZWN0c3RhdGljLWtleS0wMDA= \
       python manage.py collectstatic --noinput \
    && useradd --system --home /app creditguard \
    && mkdir -p /app/var && chown creditguard /app/var
USER creditguard

EXPOSE 8000
# No --access-logfile: the app writes one access line per request (gunicorn.conf.py).
CMD ["gunicorn", "creditguard.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
