"""What OPTIONS answers on the API (REST_FRAMEWORK["DEFAULT_METADATA_CLASS"]).

Its own module: DRF reads the setting while it defines APIView, so this must not import
anything that imports rest_framework.views."""

from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    """The view's name, description and media types. DRF's default would also describe a
    `serializer_class`, which these views do not declare (each method names its own input
    and output serializers; /api/schema documents them), and fail with a 500."""

    def determine_actions(self, request, view):
        return {}
