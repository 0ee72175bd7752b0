"""The original's data/urls.py with DRF 3.14's `basename` and Django 3.2's include((urls, app_name), namespace)."""
from django.urls import include, re_path
from rest_framework.routers import DefaultRouter

from form.views import FormViewSet

router = DefaultRouter()
router.register(r"form", FormViewSet, basename="form")

urlpatterns = [
    re_path(r"^", include((router.urls, "drf"), namespace="drf")),
]
