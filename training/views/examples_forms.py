"""Forms of the tasks and examples pages. They convert text inputs to values; the services validate."""

import json

from django import forms

from training.ingest.formats import MAPPABLE_FIELDS
from training.models import TaskKind


class TaskForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="e.g. Support ticket routing")
    slug = forms.SlugField(
        max_length=80, required=False, help_text="Short id used in URLs and the API; default from the name."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(choices=TaskKind.choices)
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "billing\nlost_card\nrefund"}),
        help_text="Classification: one label per line.",
    )
    output_schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": '{"type": "object", "properties": {...}}'}),
        help_text="Extraction: the JSON Schema of the output object.",
    )
    source_language = forms.CharField(max_length=20, required=False, help_text="Translation: e.g. en.")
    target_language = forms.CharField(max_length=20, required=False, help_text="Translation: e.g. de.")
    frontier_model = forms.CharField(
        max_length=100,
        widget=forms.TextInput(attrs={"list": "frontier-models"}),
        help_text="The model the task uses today; prices come from the price table when left empty.",
    )
    price_input_per_million = forms.DecimalField(
        max_digits=10, decimal_places=4, required=False, label="Input price (USD per million tokens)"
    )
    price_output_per_million = forms.DecimalField(
        max_digits=10, decimal_places=4, required=False, label="Output price (USD per million tokens)"
    )
    target_agreement = forms.FloatField(initial=0.95, help_text="Share of answers that must agree with the frontier.")
    eval_share = forms.FloatField(initial=0.10, help_text="Share of inputs held out for evaluation.")

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["slug"]

    def clean_labels(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["labels"].splitlines() if line.strip()]

    def clean_output_schema(self) -> dict:
        text = self.cleaned_data["output_schema"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The schema must be a JSON object.")
        return value

    @staticmethod
    def initial_for(task) -> dict:
        return {
            "name": task.name,
            "description": task.description,
            "kind": task.kind,
            "labels": "\n".join(task.labels or []),
            "output_schema": json.dumps(task.output_schema, indent=2) if task.output_schema else "",
            "source_language": task.source_language,
            "target_language": task.target_language,
            "frontier_model": task.frontier_model,
            "price_input_per_million": task.price_input_per_million,
            "price_output_per_million": task.price_output_per_million,
            "target_agreement": task.target_agreement,
            "eval_share": task.eval_share,
        }


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines or CSV, optionally gzip-compressed (.gz).")
    format = forms.ChoiceField(
        choices=[("auto", "Detect from the file"), ("jsonl", "JSON Lines"), ("csv", "CSV")],
        initial="auto",
        required=False,
    )
    input_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"}),
        help_text="CSV: the column holding the input (default: input or prompt).",
    )  # fmt: skip
    output_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"}),
        help_text="CSV: the column holding the frontier model's answer (default: output or completion).",
    )  # fmt: skip
    timestamp_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"})
    )
    model_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"})
    )
    input_tokens_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"})
    )
    output_tokens_column = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"list": "csv-columns"})
    )

    def column_mapping(self) -> dict[str, str]:
        mapping = {}
        for field in MAPPABLE_FIELDS:
            column = (self.cleaned_data.get(f"{field}_column") or "").strip()
            if column:
                mapping[field] = column
        return mapping

    def clean(self):
        cleaned = super().clean()
        has_input = bool((cleaned.get("input_column") or "").strip())
        has_output = bool((cleaned.get("output_column") or "").strip())
        if has_input != has_output or (not has_input and self.column_mapping()):
            raise forms.ValidationError("A column mapping names both the input column and the output column.")
        return cleaned
