"""Output (and a few input) serializers of the accounts app."""

from rest_framework import serializers

from accounts.models import Organization, Role, User
from raptorflow.api import StrictSerializer


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "avatar_url", "date_joined"]
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "is_personal", "settings", "created_at", "updated_at"]
        read_only_fields = fields


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class TokenResponseSerializer(TokenPairSerializer):
    user = UserSerializer()
    organization = OrganizationSerializer()
    role = serializers.ChoiceField(choices=Role.choices)


class MeSerializer(serializers.Serializer):
    user = UserSerializer()
    organization = OrganizationSerializer()
    role = serializers.ChoiceField(choices=Role.choices)


class RefreshInputSerializer(StrictSerializer):
    refresh = serializers.CharField()


class VerifyTokenInputSerializer(StrictSerializer):
    token = serializers.CharField()


class VerifyTokenOutputSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    user_id = serializers.UUIDField()
    exp = serializers.IntegerField(help_text="Expiry as a Unix timestamp.")


class GoogleLoginOutputSerializer(serializers.Serializer):
    authorization_url = serializers.URLField()
    state = serializers.CharField()


class GoogleIdTokenInputSerializer(StrictSerializer):
    id_token = serializers.CharField()


def token_response(tokens: dict, *, user, organization, role: str) -> dict:
    return {
        **tokens,
        "user": UserSerializer(user).data,
        "organization": OrganizationSerializer(organization).data,
        "role": role,
    }
