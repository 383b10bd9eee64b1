"""The API refuses a document with no letter or digit (422, with the reason), before any workflow
starts, and accepts text in non-Latin scripts (issue 18)."""

import pytest

from approvals.models import Document
from approvals.validators import NO_WORDS_MESSAGE
from durable.models import Execution
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("text", ["... !!! ???", "----", "\U0001f389\U0001f389", "  ;;  \n\n ..."])
def test_punctuation_only_text_is_refused_with_the_reason(api, text):
    response = api.post("/api/documents", {"title": "Nothing", "text": text})
    body = assert_error(response, 422, "validation_error")
    assert body["message"] == NO_WORDS_MESSAGE
    assert body["details"] == [{"loc": ["body", "text"], "message": NO_WORDS_MESSAGE, "type": "no_words"}]
    assert Document.objects.count() == 0
    assert Execution.objects.count() == 0


def test_a_refused_submit_with_an_idempotency_key_stores_no_answer(api):
    response = api.post("/api/documents", {"title": "Nothing", "text": "!!!"}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 422
    accepted = api.post(
        "/api/documents", {"title": "Words", "text": "Now it has words."}, headers={"Idempotency-Key": "k-1"}
    )
    assert accepted.status_code == 202, accepted.content


@pytest.mark.parametrize(
    "text",
    [
        "Заседание состоится завтра.",
        "会议已经结束。",
        "Το σχέδιο εγκρίθηκε.",  # noqa: RUF001 (Greek on purpose)
    ],
)
def test_text_in_non_latin_scripts_is_accepted(api, text):
    response = api.post("/api/documents", {"title": "Elsewhere", "text": text})
    assert response.status_code == 202, response.content
    document = Document.objects.get()
    assert document.text == text
    assert Execution.objects.filter(pk=document.execution_id).exists()
