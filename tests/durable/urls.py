"""URLs of the engine's test project: the admin (the engine's pages and django-rq's dashboard)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
