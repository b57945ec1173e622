"""Endpoints of the rag app: organization provider keys and the reply endpoint."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.models import MANAGER_ROLES
from rag import selectors, services
from rag.models import ChatProviderName, ProviderKey
from rag.serializers import ProviderKeyInputSerializer, ProviderKeySerializer
from raptorflow.api import TenantAPIView
from raptorflow.pagination import paginator_with_ordering

PROVIDER_PARAMETER = OpenApiParameter(
    "provider", OpenApiTypes.STR, OpenApiParameter.PATH, enum=[p.value for p in ChatProviderName]
)


class ProviderKeyListView(TenantAPIView):
    """The organization's own chat provider keys (owners and admins). Keys are write-only:
    only the provider and the last four characters are ever shown."""

    model = ProviderKey
    serializer_class = ProviderKeySerializer
    pagination_class = paginator_with_ordering("provider")

    @extend_schema(operation_id="provider_keys_list", responses=ProviderKeySerializer(many=True))
    def get(self, request):
        self.require_role(*MANAGER_ROLES)
        page = self.paginate_queryset(selectors.provider_key_list(organization=self.organization))
        return self.get_paginated_response(ProviderKeySerializer(page, many=True).data)


class ProviderKeyDetailView(TenantAPIView):
    model = ProviderKey
    serializer_class = ProviderKeySerializer
    lookup_field = "provider"
    lookup_url_kwarg = "provider"

    @extend_schema(
        operation_id="provider_keys_set",
        parameters=[PROVIDER_PARAMETER],
        request=ProviderKeyInputSerializer,
        responses={200: ProviderKeySerializer, 201: ProviderKeySerializer},
    )
    def put(self, request, provider: str):
        self.require_role(*MANAGER_ROLES)
        data = ProviderKeyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        stored, created = services.provider_key_set(
            organization=self.organization,
            provider=provider,
            api_key=data.validated_data["api_key"],
            actor=request.user,
            request=request,
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ProviderKeySerializer(stored).data, status=code)

    @extend_schema(operation_id="provider_keys_delete", parameters=[PROVIDER_PARAMETER], responses={204: None})
    def delete(self, request, provider: str):
        self.require_role(*MANAGER_ROLES)
        services.provider_key_delete(provider_key=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
