"""Output (and a few input) serializers of the accounts app."""

from django.core.validators import DomainNameValidator, RegexValidator
from rest_framework import serializers

from accounts.models import DomainClaim, InvitationStatus, Membership, Organization, Role, User
from accounts.services import CONSUMER_EMAIL_DOMAINS
from raptorflow.api import StrictSerializer
from raptorflow.json_fields import MetadataField


class UserSerializer(serializers.ModelSerializer):
    # Empty for an account without a Google picture, so not typed as a URI.
    avatar_url = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "avatar_url", "date_joined"]
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    settings = MetadataField(read_only=True, help_text="The organization's own settings (a JSON object).")

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


# --- Organizations, members, invitations, domain claims, export ------------------------


class MyOrganizationSerializer(OrganizationSerializer):
    """An organization as one of its members sees it, with their role."""

    settings = MetadataField(read_only=True, help_text="The organization's own settings (a JSON object).")
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, help_text="Your role in this organization.")

    class Meta(OrganizationSerializer.Meta):
        fields = [*OrganizationSerializer.Meta.fields, "role"]
        read_only_fields = fields


class OrganizationCreateInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)


class OrganizationUpdateInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    settings = MetadataField(required=False, help_text="Replaces the whole settings object (at most 16 KB).")


class SwitchOrganizationInputSerializer(StrictSerializer):
    organization_id = serializers.UUIDField()


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(source="user.id")
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    avatar_url = serializers.CharField(source="user.avatar_url")
    role = serializers.ChoiceField(choices=Role.choices)
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["user_id", "email", "name", "avatar_url", "role", "joined_at"]
        read_only_fields = fields


class MemberRoleInputSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    status = serializers.ChoiceField(choices=InvitationStatus.choices)
    invited_by = UserSerializer(allow_null=True, help_text="Null once the inviter's account is deleted.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    accepted_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class InvitationCreateInputSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class DomainClaimSerializer(serializers.ModelSerializer):
    approved = serializers.BooleanField(
        help_text="Sign-ins from this domain join the organization only once an operator approved the claim."
    )
    approved_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        model = DomainClaim
        fields = ["id", "domain", "approved", "approved_at", "created_at"]
        read_only_fields = fields


# Dot-separated labels of letters, digits and inner hyphens, ending in a letters-only TLD:
# the ASCII domain names DomainNameValidator accepts, written so that the schema can say it.
DOMAIN_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?$"


class DomainClaimInputSerializer(StrictSerializer):
    domain = serializers.CharField(
        max_length=253,
        help_text="A Google Workspace domain, e.g. acme.com.",
        validators=[RegexValidator(DOMAIN_PATTERN, message="Enter a domain name such as acme.com.")],
    )

    def validate_domain(self, value: str) -> str:
        domain = value.strip().lower().rstrip(".")
        DomainNameValidator(accept_idna=False, message="Enter a domain name such as acme.com.")(domain)
        if "." not in domain:
            raise serializers.ValidationError("Enter a domain name such as acme.com.")
        if domain in CONSUMER_EMAIL_DOMAINS:
            raise serializers.ValidationError("Consumer email domains cannot be claimed.")
        return domain
