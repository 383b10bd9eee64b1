from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("queue/", views.queue, name="queue"),
    path("documents/new/", views.document_new, name="document_new"),
    path("documents/<int:pk>/", views.document_detail, name="document"),
    path("documents/<int:pk>/live/", views.document_live, name="document_live"),
    path("documents/<int:pk>/reviews/<int:review_pk>/decide/", views.review_decide, name="review_decide"),
    path("documents/<int:pk>/reviews/<int:review_pk>/claim/", views.review_claim, name="review_claim"),
    path("audit.csv", views.audit_export, name="audit_export"),
]
