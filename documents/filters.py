"""Query-string filters of the document list (django-filter; an invalid value is a 400
naming the parameter)."""

import django_filters

from documents.models import Document, DocumentStatus, Visibility


class DocumentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DocumentStatus.choices)
    visibility = django_filters.ChoiceFilter(choices=Visibility.choices)
    uploader = django_filters.UUIDFilter(field_name="owner_id", help_text="The uploader's user id.")
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains", max_length=200,
                                  help_text="Part of the title, any case.")

    class Meta:
        model = Document
        fields = ["status", "visibility", "uploader", "q"]
