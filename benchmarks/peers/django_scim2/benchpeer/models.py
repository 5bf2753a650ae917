"""The user and group models django-scim2 asks an integrator for."""

from typing import Any

from django.db import models
from django.utils import timezone
from django_scim.filters import UserFilterQuery as BaseUserFilterQuery
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    name = models.CharField(max_length=150, unique=True)


class User(AbstractSCIMUserMixin):
    username = models.CharField(max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    member_of = models.ManyToManyField(Group, related_name="members", blank=True)

    @property
    def scim_groups(self) -> Any:
        return self.member_of

    def set_password(self, _password: str) -> None:
        """Passwords are not kept (odock-sync keeps none either)."""


def get_user_model() -> type[User]:
    return User


class UserFilterQuery(BaseUserFilterQuery):
    attr_map = {
        **BaseUserFilterQuery.attr_map,
        ("externalId", None, None): "scim_external_id",
        ("emails", "value", None): "email",
    }
