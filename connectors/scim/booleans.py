"""SCIM booleans as Microsoft Entra ID writes them: besides true and false, the strings
"True" and "False" (its provisioning service before `aadOptscim062020`, its app-role
mapping `roles[primary eq "True"].value`, its SCIM validator), in any case."""

from __future__ import annotations

from typing import Any


def boolean_of(value: Any) -> bool | None:
    """The boolean a JSON boolean or one of those strings stands for, else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
