"""Testing a connector's settings: bind, count people and groups, map one person.

Changes nothing; runs inside a web request or a CLI command, so its timeouts are short.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connectors.ldap.client import DirectoryClient
from connectors.ldap.errors import DirectoryError
from connectors.ldap.mapping import (
    AttributeMapping,
    EntryProblem,
    PersonReader,
    and_filter,
    escape_filter_value,
)
from models.actions.directory_connectors import connector_mapping, server_config
from models.directory.entries import read_person
from models.directory.read import refuse_aliases, unread_reason
from models.entities import DirectoryConnector
from models.settings import Settings

TEST_CONNECT_TIMEOUT = 3.0
TEST_SEARCH_TIMEOUT = 5.0


def test_connection(
    connector: DirectoryConnector, settings: Settings, *, username: str = ""
) -> dict[str, Any]:
    """Bind, count the matching people and groups, and map one person; change nothing.

    References to other naming contexts (an AD child domain) are read past as a sync reads
    past them: what this server holds is counted, and `references` and `warning` say what
    was left out (a sync applies what it reads and withholds deprovisioning)."""
    result: dict[str, Any] = {"ok": False}
    references: list[str] = []
    try:
        mapping = connector_mapping(connector)
        config = server_config(connector, settings)
        # The test runs inside a web request: short timeouts whatever a sync may take.
        config = replace(
            config,
            connect_timeout=min(config.connect_timeout, TEST_CONNECT_TIMEOUT),
            search_timeout=min(config.search_timeout, TEST_SEARCH_TIMEOUT),
        )
        with DirectoryClient(config) as client:
            result["server"] = client.url
            # An alias base fails a sync as a configuration error: the test says so too,
            # rather than counting nobody under it.
            refuse_aliases(client, connector)
            result["users"] = client.count(
                connector.base_dn,
                mapping.user_filter,
                page_size=connector.page_size,
                references=references,
            )
            result["groups"] = client.count(
                connector.group_base_dn or connector.base_dn,
                mapping.group_filter,
                page_size=connector.page_size,
                references=references,
            )
            filterstr = mapping.user_filter
            if username:
                term = f"({mapping.username}={escape_filter_value(username)})"
                filterstr = and_filter(mapping.user_filter, term)
            result["sample"] = sample = _sample(client, connector, mapping, filterstr, references)
    except DirectoryError as exc:
        result["error_code"] = exc.code
        result["error"] = exc.message
        return result
    result.update(_verdict(connector, mapping, result["users"], sample, username))
    if references:
        result["references"] = references
        result["warning"] = (
            f"{unread_reason(references)}; the counts leave them out, and a sync applies what "
            "it reads and withholds deprovisioning"
        )
    return result


def _verdict(
    connector: DirectoryConnector,
    mapping: AttributeMapping,
    users: int,
    sample: dict[str, Any] | None,
    username: str,
) -> dict[str, Any]:
    """ok only when the read found people and the sample maps; otherwise what was found."""
    where = f"under {connector.base_dn} with the user filter {mapping.user_filter}"
    if not users:
        return {
            "ok": False,
            "error_code": "no_people",
            "error": f"no entry {where} (preset {connector.preset}): "
            "check the base DN, the filter and the preset",
        }
    if sample is None:
        return {
            "ok": False,
            "error_code": "no_sample",
            "error": f"{users} entries {where}, none with {mapping.username}={username}",
        }
    if "error" in sample:
        return {
            "ok": False,
            "error_code": "unmappable",
            "error": f"{users} entries {where}, but {sample['dn']} does not map with the "
            f"preset {connector.preset}: {sample['error']}",
        }
    return {"ok": True}


def _sample(
    client: DirectoryClient,
    connector: DirectoryConnector,
    mapping: AttributeMapping,
    filterstr: str,
    references: list[str],
) -> dict[str, Any] | None:
    """The first person found; a page may hold only a reference, so read on to one."""
    for page in client.paged_search(
        connector.base_dn, filterstr, mapping.user_attributes(), page_size=1, references=references
    ):
        for dn, attrs in page:
            try:
                person = read_person(PersonReader(mapping), dn, attrs)
            except EntryProblem as exc:
                return {"dn": dn, "error": exc.message}
            return {
                "dn": person.dn,
                "external_id": person.external_id,
                "username": person.username,
                "email": person.email,
                "name": person.name,
                "disabled": person.disabled,
            }
    return None
