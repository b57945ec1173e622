from django.urls import path

from accounts.views import auth

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
]
