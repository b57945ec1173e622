"""The Django admin follows the last-owner rule wherever an operator can touch a membership:
the membership admin's change form, its delete view and bulk delete, and the membership
inlines of the user and organization pages. A refusal is an error message on the page the
operator came from, and the row is left as it was; allowed changes are audited."""

import pytest
from django import forms

from accounts.models import Membership, Role, WorkspaceExclusion
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import join, new_user

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/accounts/membership/"


@pytest.fixture
def last_owner(owner, teammate, org):
    """The owner's membership of `org`, shared with the teammate: its only owner."""
    membership = Membership.objects.get(user=owner, organization=org)
    assert membership.role == Role.OWNER
    assert Membership.objects.filter(organization=org, role=Role.OWNER).count() == 1
    return membership


@pytest.fixture
def second_owner(org):
    otto = new_user("otto@acme.test", "Otto Owner")
    return join(otto, org, Role.OWNER)


def form_data(page) -> dict:
    """What the browser would post back, unchanged, from an admin change or add page: the
    main form and every inline formset."""
    data = {}
    form_list = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
        form_list.extend(inline.formset.forms)
    for form in form_list:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field, forms.BooleanField):
                if value:
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = "" if value is None else value
    return data


def inline_prefix(page, membership) -> str:
    """The prefix of `membership`'s row in the page's membership inline."""
    for inline in page.context["inline_admin_formsets"]:
        for form in inline.formset.forms:
            if isinstance(form.instance, Membership) and form.instance.pk == membership.pk:
                return form.prefix
    raise AssertionError(f"no inline row for {membership}")


def shown(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def assert_refused_last_owner(response, membership, *, role=Role.OWNER):
    assert response.status_code == 200
    messages = shown(response)
    assert any("last owner" in message for message in messages), messages
    assert not any("successfully" in message for message in messages), messages
    stored = Membership.objects.get(pk=membership.pk)
    assert (stored.user_id, stored.organization_id, stored.role) == (
        membership.user_id,
        membership.organization_id,
        role,
    )
    assert not AuditLog.objects.filter(action__in=["membership.role_change", "membership.remove"]).exists()


# --- the membership admin ---------------------------------------------------------------


def test_the_change_form_does_not_demote_the_last_owner(site, last_owner):
    url = f"{MEMBERSHIPS}{last_owner.pk}/change/"
    data = form_data(site.get(url)) | {"role": Role.ADMIN}

    response = site.post(url, data, follow=True)

    assert response.redirect_chain[-1][0] == url
    assert_refused_last_owner(response, last_owner)


def test_the_delete_view_does_not_remove_the_last_owner(site, last_owner):
    response = site.post(f"{MEMBERSHIPS}{last_owner.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.redirect_chain[-1][0] == f"{MEMBERSHIPS}{last_owner.pk}/change/"
    assert_refused_last_owner(response, last_owner)


def test_the_bulk_delete_keeps_the_last_owner_and_removes_the_others(site, last_owner, teammate, org):
    teammate_membership = Membership.objects.get(user=teammate, organization=org)

    response = site.post(
        MEMBERSHIPS,
        {
            "action": "delete_selected",
            "_selected_action": [str(last_owner.pk), str(teammate_membership.pk)],
            "post": "yes",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert any("last owner" in message for message in shown(response)), shown(response)
    assert Membership.objects.filter(pk=last_owner.pk, role=Role.OWNER).exists()
    assert not Membership.objects.filter(pk=teammate_membership.pk).exists()
    removal = AuditLog.objects.get(action="membership.remove")
    assert (removal.target_id, removal.organization_id) == (str(teammate.pk), org.pk)


def test_the_change_form_demotes_an_owner_who_is_not_the_last_and_records_it(site, operator, last_owner, second_owner):
    url = f"{MEMBERSHIPS}{second_owner.pk}/change/"
    data = form_data(site.get(url)) | {"role": Role.MEMBER}

    response = site.post(url, data, follow=True)

    assert response.status_code == 200
    assert any("successfully" in message for message in shown(response))
    second_owner.refresh_from_db()
    assert second_owner.role == Role.MEMBER
    entry = AuditLog.objects.get(action="membership.role_change")
    assert entry.actor_id == operator.pk
    assert entry.organization_id == second_owner.organization_id
    assert entry.details == entry.details | {"old_role": "owner", "new_role": "member", "reason": "operator"}


def test_the_delete_view_removes_an_owner_who_is_not_the_last_and_records_it(site, operator, last_owner, second_owner):
    response = site.post(f"{MEMBERSHIPS}{second_owner.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert not Membership.objects.filter(pk=second_owner.pk).exists()
    assert WorkspaceExclusion.objects.filter(organization=second_owner.organization, user=second_owner.user).exists()
    entry = AuditLog.objects.get(action="membership.remove")
    assert (entry.actor_id, entry.target_id) == (operator.pk, str(second_owner.user_id))
    assert entry.details["reason"] == "operator"


def test_the_change_form_does_not_move_a_membership_to_another_organization(site, last_owner, outsider):
    url = f"{MEMBERSHIPS}{last_owner.pk}/change/"
    data = form_data(site.get(url)) | {"organization": str(outsider.default_organization_id)}

    site.post(url, data)

    assert Membership.objects.get(pk=last_owner.pk).organization_id == last_owner.organization_id


def test_the_add_form_refuses_a_second_membership_of_the_same_user(site, teammate, org):
    page = site.get(f"{MEMBERSHIPS}add/")
    data = form_data(page) | {"user": str(teammate.pk), "organization": str(org.pk), "role": Role.ADMIN}

    response = site.post(f"{MEMBERSHIPS}add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert list(Membership.objects.filter(user=teammate, organization=org).values_list("role", flat=True)) == ["member"]


def test_the_add_form_refuses_a_role_outside_the_choices(site, outsider, org):
    data = form_data(site.get(f"{MEMBERSHIPS}add/")) | {
        "user": str(outsider.pk),
        "organization": str(org.pk),
        "role": "superowner",
    }

    response = site.post(f"{MEMBERSHIPS}add/", data)

    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=outsider, organization=org).exists()


def test_the_add_form_adds_a_member_and_records_it(site, operator, outsider, org):
    data = form_data(site.get(f"{MEMBERSHIPS}add/")) | {
        "user": str(outsider.pk),
        "organization": str(org.pk),
        "role": Role.ADMIN,
    }

    response = site.post(f"{MEMBERSHIPS}add/", data)

    assert response.status_code == 302
    assert Membership.objects.get(user=outsider, organization=org).role == Role.ADMIN
    entry = AuditLog.objects.get(action="membership.add")
    assert (entry.actor_id, entry.organization_id, entry.target_id) == (operator.pk, org.pk, str(outsider.pk))


# --- the inlines of the user and organization pages ---------------------------------------


def user_page(user) -> str:
    return f"/admin/accounts/user/{user.pk}/change/"


def organization_page(organization) -> str:
    return f"/admin/accounts/organization/{organization.pk}/change/"


@pytest.mark.parametrize("page_of", ["user", "organization"])
def test_an_inline_does_not_demote_the_last_owner(site, last_owner, page_of):
    url = user_page(last_owner.user) if page_of == "user" else organization_page(last_owner.organization)
    page = site.get(url)
    data = form_data(page) | {f"{inline_prefix(page, last_owner)}-role": Role.MEMBER}

    response = site.post(url, data, follow=True)

    assert response.redirect_chain[-1][0] == url
    assert_refused_last_owner(response, last_owner)


@pytest.mark.parametrize("page_of", ["user", "organization"])
def test_an_inline_does_not_remove_the_last_owner(site, last_owner, page_of):
    url = user_page(last_owner.user) if page_of == "user" else organization_page(last_owner.organization)
    page = site.get(url)
    data = form_data(page) | {f"{inline_prefix(page, last_owner)}-DELETE": "on"}

    response = site.post(url, data, follow=True)

    assert response.redirect_chain[-1][0] == url
    assert_refused_last_owner(response, last_owner)


@pytest.mark.parametrize("page_of", ["user", "organization"])
def test_an_inline_removes_an_owner_who_is_not_the_last_and_records_it(
    site, operator, last_owner, second_owner, page_of
):
    url = user_page(second_owner.user) if page_of == "user" else organization_page(second_owner.organization)
    page = site.get(url)
    data = form_data(page) | {f"{inline_prefix(page, second_owner)}-DELETE": "on"}

    response = site.post(url, data, follow=True)

    assert response.status_code == 200
    assert not any("last owner" in message for message in shown(response))
    assert not Membership.objects.filter(pk=second_owner.pk).exists()
    entry = AuditLog.objects.get(action="membership.remove")
    assert (entry.actor_id, entry.target_id, entry.details["reason"]) == (
        operator.pk,
        str(second_owner.user_id),
        "operator",
    )


def test_the_organization_inline_hands_the_organization_over_in_one_save(site, operator, last_owner, teammate, org):
    teammate_membership = Membership.objects.get(user=teammate, organization=org)
    page = site.get(organization_page(org))
    data = form_data(page) | {
        f"{inline_prefix(page, last_owner)}-role": Role.MEMBER,
        f"{inline_prefix(page, teammate_membership)}-role": Role.OWNER,
    }

    response = site.post(organization_page(org), data, follow=True)

    assert response.status_code == 200
    assert not any("last owner" in message for message in shown(response))
    roles = dict(Membership.objects.filter(organization=org).values_list("user__email", "role"))
    assert roles == {"olivia@acme.test": "member", "tom@acme.test": "owner"}
    changes = AuditLog.objects.filter(action="membership.role_change", actor_id=operator.pk)
    assert sorted(entry.details["new_role"] for entry in changes) == ["member", "owner"]


def test_the_organization_inline_refuses_a_second_row_for_a_member(site, last_owner, teammate, org):
    page = site.get(organization_page(org))
    data = form_data(page)
    prefix = "memberships"
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    data |= {
        f"{prefix}-TOTAL_FORMS": str(index + 1),
        f"{prefix}-{index}-user": str(teammate.pk),
        f"{prefix}-{index}-role": Role.ADMIN,
        f"{prefix}-{index}-organization": str(org.pk),
    }

    response = site.post(organization_page(org), data)

    assert response.status_code == 200  # the form comes back with its errors
    assert any(inline.formset.total_error_count() for inline in response.context["inline_admin_formsets"])
    assert list(Membership.objects.filter(user=teammate, organization=org).values_list("role", flat=True)) == ["member"]


def test_the_user_inline_refuses_a_role_outside_the_choices(site, last_owner, teammate, org):
    teammate_membership = Membership.objects.get(user=teammate, organization=org)
    page = site.get(user_page(teammate))
    data = form_data(page) | {f"{inline_prefix(page, teammate_membership)}-role": "superowner"}

    response = site.post(user_page(teammate), data)

    assert response.status_code == 200
    assert any(inline.formset.total_error_count() for inline in response.context["inline_admin_formsets"])
    assert Membership.objects.get(pk=teammate_membership.pk).role == Role.MEMBER
