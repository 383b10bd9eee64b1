"""A document with no letter or digit in any script is refused at submit, before any workflow starts;
text in any script with words is accepted (issue 18)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from approvals.errors import InvalidValueError
from approvals.models import Document
from approvals.services import document_submit
from approvals.validators import NO_WORDS_MESSAGE, check_has_words
from durable.models import Execution

NO_WORDS = ["... !!! ???", "----", "\u2014 * \u2022 *", "___", "\U0001f389\U0001f389 \U0001f44d", "?!\n\n...\n"]
WITH_WORDS = [
    "Привет, мир.",  # Cyrillic
    "今天天气很好。",  # Chinese
    "مرحبا",  # Arabic
    "नमस्ते",  # Devanagari
    "2026",  # digits alone are words here
    "... a",
]


@pytest.mark.parametrize("text", NO_WORDS)
def test_text_without_letters_or_digits_is_refused(text):
    with pytest.raises(InvalidValueError) as caught:
        check_has_words(text, ["text"])
    assert caught.value.kind == "no_words"
    assert caught.value.loc == ["text"]
    assert str(caught.value) == NO_WORDS_MESSAGE


@pytest.mark.parametrize("text", WITH_WORDS)
def test_text_with_a_letter_or_digit_in_any_script_passes(text):
    check_has_words(text, ["text"])


@pytest.fixture
def submitter(db):
    return get_user_model().objects.create_user("submitter", password="pw-submitter-1")


def _post(user, data):
    client = Client()
    client.force_login(user)
    return client.post(reverse("approvals:document_new"), data)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("text", ["... !!! ???", "----", "\U0001f389\U0001f44d"])
def test_the_form_refuses_punctuation_only_text_with_a_clear_message(submitter, text):
    response = _post(submitter, {"title": "Nothing", "text": text})
    assert response.status_code == 400
    assert "has no words to summarize" in response.content.decode()
    assert Document.objects.count() == 0
    assert Execution.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_form_refuses_an_uploaded_file_of_punctuation(submitter):
    upload = io.BytesIO(b"--- *** ---\n\n!!!")
    upload.name = "rules.md"
    response = _post(submitter, {"title": "Rules", "file": upload})
    assert response.status_code == 400
    assert "has no words to summarize" in response.content.decode()
    assert Document.objects.count() == 0
    assert Execution.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_form_accepts_text_in_a_non_latin_script(submitter):
    text = "Привет, мир. Это тест."
    response = _post(submitter, {"title": "Cyrillic", "text": text})
    assert response.status_code == 302
    document = Document.objects.get()
    assert document.text == text
    assert Execution.objects.filter(pk=document.execution_id).exists()


@pytest.mark.django_db(transaction=True)
def test_the_service_refuses_it_too_and_stores_nothing(submitter):
    with pytest.raises(InvalidValueError, match="no words to summarize"):
        document_submit(title="Dots", text="...", submitter=submitter)
    assert Document.objects.count() == 0
    assert Execution.objects.count() == 0
