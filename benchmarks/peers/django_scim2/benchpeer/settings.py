"""Django settings of the benchmark's django-scim2 peer; the database comes from the env."""

import os

SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "bench-only")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django_scim", "benchpeer"]
MIDDLEWARE = ["benchpeer.auth.BearerTokenMiddleware"]
ROOT_URLCONF = "benchpeer.urls"
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PEER_DB_NAME"],
        "USER": os.environ.get("PEER_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("PEER_DB_PASSWORD", ""),
        "HOST": os.environ.get("PEER_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PEER_DB_PORT", "5432"),
        # One connection per thread, kept (Django's default opens one per request).
        "CONN_MAX_AGE": 60,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "benchpeer.User"
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "USER_MODEL_GETTER": "benchpeer.models.get_user_model",
    "GROUP_MODEL": "benchpeer.models.Group",
    "USER_FILTER_PARSER": "benchpeer.models.UserFilterQuery",
    "AUTHENTICATION_SCHEMES": [{"type": "oauthbearertoken", "name": "Bearer", "primary": True}],
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
