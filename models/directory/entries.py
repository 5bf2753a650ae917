"""A directory entry read as a person, held to the rules every source's users are held to.

The connector maps an entry (connectors.ldap.mapping); what Odock accepts as an email address
and a name is the domain's rule (models.actions.users), applied here to each person read, so
an entry with a NUL, an escape sequence or a space in its mail or name is reported on the run
with its DN and changes nothing, instead of being planned and then failing at apply time.
"""

from __future__ import annotations

from connectors.ldap.client import Attributes
from connectors.ldap.mapping import EntryProblem, Person, PersonReader
from models.actions.users import validate_email, validate_name
from models.errors import DomainError


def read_person(reader: PersonReader, dn: str, attrs: Attributes) -> Person:
    """The person an entry describes; EntryProblem (with the stable id when readable, so the
    person is not taken for gone) when the entry cannot be mapped or breaks the user rules."""
    person = reader.person(dn, attrs)
    try:
        person.email = validate_email(person.email)
        person.name = validate_name(person.name)
    except DomainError as exc:
        raise EntryProblem(
            dn, f"{exc.message}; nothing is changed for this entry", person.external_id
        ) from None
    return person
