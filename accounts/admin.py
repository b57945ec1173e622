"""Operators' view of users, organizations, memberships, invitations and Workspace domain
claims (the audit log's is raptorflow/admin.py).

Writes go through accounts.services, as the API's do: deleting an organization cancels its
subscription first, deleting a user follows the last-owner rule and takes their personal
organization along, approving a domain claim is audited, and memberships — in their own
admin and in the user's and the organization's inlines — are added, changed and removed
under the last-owner rule, with the same locks as the API's.
"""

from functools import partial

from allauth.socialaccount.models import SocialAccount
from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import services
from accounts.models import DomainClaim, Invitation, Membership, Organization, Role, User, next_whole_second
from raptorflow.errors import DomainError


class ServiceWriteMixin:
    """Writes through a service that may refuse (last owner, a subscription Razorpay
    would not cancel): the refusal is shown to the operator instead of a server error,
    the admin's success message is not sent, and the operator lands back on the object's
    page, which shows what is stored."""

    def through_service(self, request, label, call) -> bool:
        try:
            call()
        except DomainError as exc:
            self.message_user(request, f"{label}: {exc.detail}", messages.ERROR)
            request._service_refused = True
            return False
        return True

    def delete_through_service(self, request, obj) -> bool:
        return self.through_service(request, obj, lambda: self.service_delete(request, obj))

    def delete_model(self, request, obj):
        self.delete_through_service(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_through_service(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_service_refused", False):
            return HttpResponseRedirect(request.path.rsplit("/delete/", 1)[0] + "/change/")
        return super().response_delete(request, obj_display, obj_id)

    def response_change(self, request, obj):
        if getattr(request, "_service_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_service_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        if getattr(request, "_service_refused", False) and level == messages.SUCCESS:
            return None
        return super().message_user(request, message, level, *args, **kwargs)


def _membership_label(membership: Membership) -> str:
    # Not str(membership): the instance already carries the refused role.
    return f"{membership.user} in {membership.organization}"


class MembershipForm(forms.ModelForm):
    """A membership's user and organization are fixed once it exists: moving it would take
    an owner out of their organization behind the last-owner rule's back. Remove it and
    add another instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            for name in ("user", "organization"):
                if name in self.fields:
                    self.fields[name].disabled = True


class MembershipWritesMixin(ServiceWriteMixin):
    """Saves the membership inline through the services: additions and promotions to owner
    first, so that handing an organization over in one save works, then the other role
    changes, then removals. A refused row stays as stored and is left out of the admin's
    change history."""

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        operator = request.user

        def saved(obj, call) -> bool:
            return self.through_service(request, _membership_label(obj), call)

        added = [obj for obj in formset.new_objects if saved(obj, partial(_add, obj, operator))]
        promotions_first = sorted(formset.changed_objects, key=lambda pair: pair[0].role != Role.OWNER)
        changed = [
            (obj, fields) for obj, fields in promotions_first if saved(obj, partial(_change_role, obj, operator))
        ]
        deleted = [obj for obj in formset.deleted_objects if saved(obj, partial(_remove, obj, operator))]
        formset.new_objects, formset.changed_objects, formset.deleted_objects = added, changed, deleted


def _add(obj: Membership, operator: User) -> None:
    saved = services.unscoped_membership_add(
        organization=obj.organization, user=obj.user, role=obj.role, operator=operator
    )
    # The admin goes on with its own instance (links, change history): make it the saved row.
    obj.pk, obj.created_at = saved.pk, saved.created_at
    obj._state.adding, obj._state.db = False, saved._state.db


def _change_role(obj: Membership, operator: User) -> None:
    # `obj` carries the form's role; the service re-reads the stored row under its locks.
    services.unscoped_membership_change_role(membership=obj, role=obj.role, operator=operator)


def _remove(obj: Membership, operator: User) -> None:
    services.unscoped_membership_remove(membership=obj, operator=operator)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class UserMembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    fk_name = "user"
    fields = ["organization", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["organization"]
    extra = 0


class SocialAccountInline(ReadOnlyInline):
    """The Google accounts linked to the user (keyed by Google's `sub`); allauth's own
    admin edits them."""

    model = SocialAccount
    fields = ["provider", "uid", "last_login", "date_joined"]
    readonly_fields = fields
    show_change_link = True


@admin.register(User)
class UserAdmin(MembershipWritesMixin, admin.ModelAdmin):
    list_display = ["email", "name", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "name"]
    ordering = ["email"]
    fields = [
        "id",
        "email",
        "name",
        "avatar_url",
        "is_active",
        "is_staff",
        "is_superuser",
        "default_organization",
        "date_joined",
        "last_login",
    ]
    # The avatar comes from Google at sign-in.
    readonly_fields = ["id", "avatar_url", "date_joined", "last_login"]
    raw_id_fields = ["default_organization"]
    inlines = [UserMembershipInline, SocialAccountInline]
    actions = ["delete_accounts"]

    def get_actions(self, request):
        # The bulk delete would skip the last-owner rule; `delete_accounts` follows it.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        # The last owner of a shared organization hands it over first, as through the API.
        if obj is not None and services.account_deletion_blockers(obj):
            return False
        return super().has_delete_permission(request, obj)

    def service_delete(self, request, obj):
        services.account_delete(user=obj)

    @admin.action(description="Delete the selected accounts (as their owners would)", permissions=["delete"])
    def delete_accounts(self, request, queryset):
        deleted = 0
        for user in queryset:
            try:
                services.account_delete(user=user)
                deleted += 1
            except DomainError as exc:
                self.message_user(request, f"{user.email}: {exc.detail}", messages.ERROR)
        if deleted:
            self.message_user(request, f"Deleted {deleted} account(s).", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        # (De)activating an account ends every token issued before it: re-activated, the
        # user signs in again (accounts/tokens.py).
        if change and "is_active" in form.changed_data:
            obj.tokens_valid_after = next_whole_second()
        super().save_model(request, obj, form, change)


class OrganizationMembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    fk_name = "organization"
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]
    extra = 0


class InvitationInline(ReadOnlyInline):
    """Invitations are created through the API, which emails their one-time token."""

    model = Invitation
    fields = ["email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    readonly_fields = fields
    ordering = ["-created_at"]


class DomainClaimInline(ReadOnlyInline):
    model = DomainClaim
    fields = ["domain", "approved", "approved_at", "approved_by", "created_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(MembershipWritesMixin, admin.ModelAdmin):
    list_display = ["name", "is_personal", "member_count", "created_at"]
    list_filter = ["is_personal"]
    search_fields = ["name", "memberships__user__email", "domain_claims__domain"]
    fields = ["id", "name", "is_personal", "settings", "created_at", "updated_at"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [OrganizationMembershipInline, InvitationInline, DomainClaimInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("memberships", distinct=True))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, organization):
        return organization.member_total

    def service_delete(self, request, obj):
        services.unscoped_organization_delete(organization=obj, operator=request.user)


@admin.register(Membership)
class MembershipAdmin(ServiceWriteMixin, admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    raw_id_fields = ["user", "organization"]
    readonly_fields = ["created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            call = partial(_add, obj, request.user)
        elif "role" in form.changed_data:
            call = partial(_change_role, obj, request.user)
        else:
            return
        self.through_service(request, _membership_label(obj), call)

    def service_delete(self, request, obj):
        _remove(obj, request.user)

    def construct_change_message(self, request, form, formsets, add=False):
        # A refused change changed nothing: the admin's history (and its mirror in the audit
        # log) says so instead of naming the role.
        if getattr(request, "_service_refused", False):
            return []
        return super().construct_change_message(request, form, formsets, add)


@admin.register(DomainClaim)
class DomainClaimAdmin(admin.ModelAdmin):
    list_display = ["domain", "organization", "approved", "approved_at", "approved_by", "created_at"]
    list_filter = ["approved"]
    search_fields = ["domain", "organization__name"]
    list_select_related = ["organization", "approved_by"]
    raw_id_fields = ["organization"]
    # Approval only through the action below, which records who approved and when.
    readonly_fields = ["approved", "approved_at", "approved_by", "created_at"]
    actions = ["approve"]

    @admin.action(description="Approve the selected domain claims (matching Google sign-ins join)")
    def approve(self, request, queryset):
        # Approving a claim deletes the other claims on its domain, selected ones included.
        approved = 0
        for claim in list(queryset):
            try:
                services.domain_claim_approve(claim=claim, operator=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                approved += 1
        self.message_user(request, f"Approved {approved} domain claim(s).", messages.SUCCESS)


# --- simplejwt's outstanding and blacklisted tokens: jti, user and dates only -------------
# simplejwt's own admins show (and search) the stored token, a refresh token that would work
# in the wrong hands; ours never name that field, read-only like simplejwt's.


class TokenAdminMixin:
    actions = None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


class OutstandingTokenAdmin(TokenAdminMixin, admin.ModelAdmin):
    list_display = ["jti", "user", "created_at", "expires_at"]
    fields = list_display
    readonly_fields = list_display
    search_fields = ["jti", "user__email"]
    list_select_related = ["user"]
    ordering = ["-created_at"]


class BlacklistedTokenAdmin(TokenAdminMixin, admin.ModelAdmin):
    list_display = ["jti", "user", "created_at", "expires_at", "blacklisted_at"]
    fields = list_display
    readonly_fields = list_display
    search_fields = ["token__jti", "token__user__email"]
    list_select_related = ["token__user"]
    ordering = ["-blacklisted_at"]

    @admin.display(description="jti", ordering="token__jti")
    def jti(self, obj):
        return obj.token.jti

    @admin.display(description="user", ordering="token__user__email")
    def user(self, obj):
        return obj.token.user

    @admin.display(description="created at", ordering="token__created_at")
    def created_at(self, obj):
        return obj.token.created_at

    @admin.display(description="expires at", ordering="token__expires_at")
    def expires_at(self, obj):
        return obj.token.expires_at


for _model, _admin_class in ((OutstandingToken, OutstandingTokenAdmin), (BlacklistedToken, BlacklistedTokenAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)
