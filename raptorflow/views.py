"""GET /: what this server is and where to look next, as JSON (the API has no HTML home)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class RootView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "ApiRoot",
            {
                "name": serializers.CharField(),
                "version": serializers.CharField(),
                "docs": serializers.CharField(),
                "redoc": serializers.CharField(),
                "schema": serializers.CharField(),
                "health": serializers.CharField(),
            },
        ),
        tags=["operations"],
    )
    def get(self, request):
        # Paths, not absolute URLs: the same answer whichever host or proxy the client came through.
        return Response(
            {
                "name": settings.SPECTACULAR_SETTINGS["TITLE"],
                "version": settings.SPECTACULAR_SETTINGS["VERSION"],
                "docs": "/docs",
                "redoc": "/redoc",
                "schema": "/api/schema",
                "health": "/health",
            }
        )
