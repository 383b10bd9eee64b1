"""URLs of the engine's test project: the admin (the engine's pages and django-rq's dashboard) and /metrics."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls), path("", include("durable.urls"))]
