"""The original's own settings (data/settings.py), with only what Django 3.2 needs changed."""
from data.settings import *  # noqa: F401,F403 -- the original's settings, read unchanged
from data.settings import INSTALLED_APPS, MIDDLEWARE_CLASSES

# Shim 1: raven (Sentry) is left out; no SENTRY_DSN is set, and raven does not run on Django 3.2.
INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("raven.")]

# Shim 2: Django >= 2.0 ignores MIDDLEWARE_CLASSES; the same list as MIDDLEWARE, with the
# old-style signature middleware behind an adapter (without it the signature is never checked).
MIDDLEWARE = [
    "shim.middleware.SignatureRejection" if name == "alice.middleware.SignatureRejectionMiddleware" else name
    for name in MIDDLEWARE_CLASSES
]

# Shim 3: the URL conf with Django 3.2 / DRF 3.14 spellings (shim/urls.py).
ROOT_URLCONF = "shim.urls"
