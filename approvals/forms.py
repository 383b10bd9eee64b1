"""Forms of the reviewers' UI: submitting a document and deciding a review."""

from __future__ import annotations

from typing import Any

from django import forms

from approvals import conf
from approvals.errors import InvalidValueError
from approvals.models import Decision
from approvals.validators import check_has_words, check_text

TEXT_EXTENSIONS = (".txt", ".md", ".markdown")


class DocumentForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)
    text = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="Paste the text, or upload a file below.",
    )
    file = forms.FileField(
        required=False,
        help_text="A UTF-8 text or Markdown file (.txt, .md).",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(TEXT_EXTENSIONS)}),
    )

    def clean_file(self) -> str | None:
        upload = self.cleaned_data.get("file")
        if not upload:
            return None
        if not upload.name.lower().endswith(TEXT_EXTENSIONS):
            raise forms.ValidationError("Upload a .txt or .md file.")
        limit = int(conf.get("MAX_DOCUMENT_BYTES"))
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {limit:,} bytes.")
        try:
            text = str(upload.read().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("The file is not UTF-8 text.") from exc
        try:
            check_text(text, ["file"])
        except InvalidValueError as exc:
            raise forms.ValidationError("The file is not text: it contains a NUL character.") from exc
        return text

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        text = cleaned.get("text") or ""
        file_text = cleaned.get("file")
        if self.errors:
            return cleaned
        if text.strip() and file_text is not None:
            raise forms.ValidationError("Paste the text or upload a file, not both.")
        body = file_text if file_text is not None else text
        if not body.strip():
            raise forms.ValidationError("The document has no text: paste some or upload a file.")
        try:
            check_has_words(body, ["text"])
        except InvalidValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        limit = int(conf.get("MAX_DOCUMENT_BYTES"))
        if len(body.encode("utf-8")) > limit:
            raise forms.ValidationError(f"The document is larger than {limit:,} bytes.")
        cleaned["body"] = body
        return cleaned


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    # A revision request that asks the next summary to ignore earlier rounds' feedback.
    start_over = forms.BooleanField(required=False)
    # At the last round, a revision request rejects the document: the reviewer confirms it first.
    confirm_last_round = forms.BooleanField(required=False)
