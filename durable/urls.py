"""The engine's URLs, for a project to include: `path("", include("durable.urls"))` serves `/metrics`."""

from django.urls import path

from durable import views

app_name = "durable"
urlpatterns = [path("metrics", views.metrics, name="metrics")]
