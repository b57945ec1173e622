from django.urls import path

from accounts.views import auth, organizations

urlpatterns = [
    # --- sign-in and tokens (accounts/views/auth.py) ---
    path("api/auth/google/login", auth.GoogleLoginView.as_view(), name="google-login"),
    path("api/auth/google/callback", auth.GoogleCallbackView.as_view(), name="google-callback"),
    path("api/auth/google/token", auth.GoogleIdTokenView.as_view(), name="google-token"),
    path("api/auth/me", auth.MeView.as_view(), name="me"),
    path("api/auth/logout", auth.LogoutView.as_view(), name="logout"),
    path("api/auth/verify-token", auth.VerifyTokenView.as_view(), name="verify-token"),
    path("api/auth/refresh", auth.RefreshView.as_view(), name="refresh"),
    # --- organizations, members, invitations (accounts/views/organizations.py) ---
    path("api/organizations", organizations.OrganizationListCreateView.as_view(), name="organization-list"),
    path("api/organizations/current", organizations.CurrentOrganizationView.as_view(), name="organization-current"),
    path("api/auth/switch-organization", organizations.SwitchOrganizationView.as_view(), name="switch-organization"),
    path("api/organizations/current/members", organizations.MemberListView.as_view(), name="member-list"),
    path(
        "api/organizations/current/members/<uuid:user_id>",
        organizations.MemberDetailView.as_view(),
        name="member-detail",
    ),
    path(
        "api/organizations/current/invitations",
        organizations.InvitationListCreateView.as_view(),
        name="invitation-list",
    ),
    path(
        "api/organizations/current/invitations/<uuid:id>",
        organizations.InvitationDetailView.as_view(),
        name="invitation-detail",
    ),
    path("api/invitations/<str:token>/accept", organizations.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("api/organizations/current/domains", organizations.DomainClaimListCreateView.as_view(), name="domain-list"),
    path(
        "api/organizations/current/domains/<uuid:id>",
        organizations.DomainClaimDetailView.as_view(),
        name="domain-detail",
    ),
]
