"""The PATCH engine on documents alone (RFC 7644 section 3.5.2 examples and edge cases)."""

from __future__ import annotations

import pytest

from connectors.scim.errors import InvalidPath, InvalidValue, Mutability, NoTarget
from connectors.scim.patch import apply_patch
from connectors.scim.schemas import GROUP_KIND, USER_KIND
from tests.scim.payloads import ENTERPRISE

USER_DOC = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "u1",
    "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "active": True,
}


def patch(*operations, doc=None, kind=USER_KIND):
    return apply_patch(doc or USER_DOC, list(operations), kind)


def test_rfc7644_3_5_2_1_add_to_a_multi_valued_attribute_appends():
    result = patch(
        {"op": "add", "path": "emails", "value": [{"value": "new@x.io", "type": "other"}]}
    )
    assert [e["value"] for e in result["emails"]][-1] == "new@x.io"
    assert USER_DOC["emails"][-1]["value"] == "babs@jensen.org"  # the input is not mutated


def test_rfc7644_3_5_2_1_add_without_path_merges_complex_values():
    result = patch({"op": "add", "value": {"name": {"formatted": "Babs"}, "nickName": "Babs"}})
    assert result["name"] == {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Babs"}
    assert result["nickName"] == "Babs"


def test_rfc7644_3_5_2_2_remove_with_a_value_filter():
    result = patch({"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["type"] for e in result["emails"]] == ["work"]


def test_rfc7644_3_5_2_2_remove_a_sub_attribute_of_matching_values():
    result = patch({"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert "primary" not in result["emails"][0]


def test_rfc7644_3_5_2_3_replace_a_multi_valued_attribute_whole():
    result = patch({"op": "replace", "path": "emails", "value": [{"value": "only@x.io"}]})
    assert result["emails"] == [{"value": "only@x.io"}]


def test_rfc7644_3_5_2_3_replace_a_sub_attribute_through_a_value_path():
    result = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.io"})
    assert result["emails"][0] == {"value": "w@x.io", "type": "work", "primary": True}


def test_replace_a_value_path_that_matches_nothing_creates_it_when_pinned_by_eq():
    doc = {**USER_DOC, "emails": []}
    result = patch(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.io"}, doc=doc
    )
    assert result["emails"] == [{"type": "work", "value": "w@x.io"}]


def test_replace_a_value_path_that_matches_nothing_is_no_target_otherwise():
    with pytest.raises(NoTarget):
        patch({"op": "replace", "path": 'emails[value co "zzz"].type', "value": "work"})


def test_attribute_names_are_case_insensitive():
    result = patch({"op": "replace", "path": "NAME.GIVENNAME", "value": "B"})
    assert result["name"]["givenName"] == "B"


def test_extension_attributes_by_urn_path_and_whole_object():
    result = patch(
        {"op": "add", "path": f"{ENTERPRISE}:department", "value": "Ops"},
        {
            "op": "add",
            "path": ENTERPRISE,
            "value": {"employeeNumber": "7", "schemas": [ENTERPRISE]},
        },
    )
    assert result[ENTERPRISE] == {"department": "Ops", "employeeNumber": "7"}
    assert ENTERPRISE not in patch({"op": "remove", "path": ENTERPRISE}, doc=result)


def test_read_only_attributes_by_path_are_mutability_errors_but_echoes_are_ignored():
    with pytest.raises(Mutability):
        patch({"op": "replace", "path": "meta", "value": {}})
    assert patch({"op": "replace", "value": {"id": "other", "userName": "x"}})["id"] == "u1"


def test_unknown_core_attributes_are_invalid_paths():
    with pytest.raises(InvalidPath):
        patch({"op": "add", "path": "shoeSize", "value": 44})


@pytest.mark.parametrize(
    "value",
    [{"shoeSize": 44}, {"name.shoe": "x"}, {ENTERPRISE: {"shoeSize": 44}}],
)
def test_unknown_attributes_in_a_value_without_path_are_invalid_values(value):
    """RFC 7644 section 3.12: a value not compatible with the resource schema is
    invalidValue (there is no path to be invalid); scim2-server answers so."""
    with pytest.raises(InvalidValue):
        patch({"op": "replace", "value": value})


def test_group_members_add_dedupes_and_remove_filters():
    doc = {"id": "g", "displayName": "G", "members": [{"value": "a"}, {"value": "b"}]}
    added = patch(
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "c"}]},
        doc=doc,
        kind=GROUP_KIND,
    )
    assert [m["value"] for m in added["members"]] == ["a", "b", "c"]
    removed = patch({"op": "remove", "path": 'members[value eq "b"]'}, doc=added, kind=GROUP_KIND)
    assert [m["value"] for m in removed["members"]] == ["a", "c"]
    cleared = patch({"op": "remove", "path": "members"}, doc=removed, kind=GROUP_KIND)
    assert "members" not in cleared


def test_members_added_and_removed_by_value_list_keep_order_and_dedupe_as_pairwise():
    doc = {"id": "g", "displayName": "G", "members": [{"value": "a"}, {"Value": "b"}]}
    value = [{"value": "c"}, {"VALUE": "a"}, {"value": "d"}, {"value": "c"}, {"value": "b"}]
    added = patch({"op": "add", "path": "members", "value": value}, doc=doc, kind=GROUP_KIND)
    assert added["members"] == [{"value": "a"}, {"Value": "b"}, {"value": "c"}, {"value": "d"}]
    doomed = [{"value": "d"}, {"Value": "a"}, {"value": "zz"}]
    removed = patch(
        {"op": "remove", "path": "members", "value": doomed}, doc=added, kind=GROUP_KIND
    )
    assert removed["members"] == [{"Value": "b"}, {"value": "c"}]


def test_many_members_added_and_removed_are_not_compared_pairwise(monkeypatch):
    """A thousand members added to a thousand were a million comparisons (seconds)."""
    from connectors.scim import patch as engine

    compared = []
    pairwise = engine._same
    monkeypatch.setattr(engine, "_same", lambda a, b: compared.append(1) or pairwise(a, b))
    doc = {"id": "g", "displayName": "G", "members": [{"value": f"a{i}"} for i in range(200)]}
    more = [{"value": f"b{i}"} for i in range(200)]
    added = patch({"op": "add", "path": "members", "value": more}, doc=doc, kind=GROUP_KIND)
    assert len(added["members"]) == 400
    removed = patch({"op": "remove", "path": "members", "value": more}, doc=added, kind=GROUP_KIND)
    assert removed["members"] == doc["members"]
    assert len(compared) < 400


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "emails", "value": [{"value": "new@x.io", "primary": True}]},
        {"op": "add", "value": {"emails": [{"value": "new@x.io", "primary": "True"}]}},
        {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
        {"op": "Replace", "path": 'emails[value eq "babs@jensen.org"]', "value": {"primary": True}},
        # A value the user has already, added again as primary: it was dropped (200, nothing
        # changed) as a value already there.
        {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "primary": True}]},
        {"op": "Add", "value": {"emails": [{"value": "babs@jensen.org", "primary": "True"}]}},
    ],
    ids=[
        "add",
        "add-without-path",
        "replace-sub-attribute",
        "replace-filtered-value",
        "add-a-value-already-there",
        "add-a-value-already-there-without-path",
    ],
)
def test_rfc7644_3_5_2_a_new_primary_value_takes_primary_from_the_others(operation):
    """'a PATCH operation that sets a value's "primary" sub-attribute to "true" SHALL cause
    the server to automatically set "primary" to "false" for any other values in the
    array.' The engine kept both primaries, and the user was refused (400 invalidValue, at
    most one primary); scim2-server moves it."""
    result = patch(operation)
    assert [e["value"] for e in result["emails"] if e.get("primary") in (True, "True")] == [
        "new@x.io" if "new@x.io" in str(operation) else "babs@jensen.org"
    ]
    assert result["emails"][0]["primary"] is False
    assert USER_DOC["emails"][0]["primary"] is True  # the input is not mutated
    assert len(result["emails"]) == len(USER_DOC["emails"]) + ("new@x.io" in str(operation))


def test_an_add_of_a_value_already_there_sets_its_sub_attributes_once():
    result = patch(
        {"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "other"}]}
    )
    assert result["emails"][1] == {"value": "babs@jensen.org", "type": "other"}
    assert len(result["emails"]) == 2
    same = patch({"op": "add", "path": "emails", "value": [dict(USER_DOC["emails"][1])]})
    assert same == USER_DOC  # already there as sent: no change (RFC 7644 section 3.5.2.1)


def test_an_add_of_a_member_already_there_changes_nothing():
    doc = {**GROUP_DOC, "members": [{"value": "u1", "type": "User"}]}
    result = patch(
        {"op": "add", "path": "members", "value": [{"value": "u1", "type": "Group"}]},
        doc=doc,
        kind=GROUP_KIND,
    )
    assert result["members"] == [{"value": "u1", "type": "User"}]  # type is immutable


def test_an_operation_making_two_values_primary_keeps_both_for_the_check_to_refuse():
    two = [{"value": "a@x.io", "primary": True}, {"value": "b@x.io", "primary": True}]
    result = patch({"op": "replace", "path": "emails", "value": two})
    assert [e["primary"] for e in result["emails"]] == [True, True]


GROUP_DOC = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    "displayName": "Ops",
    "members": [{"value": "u1"}, {"value": "u2"}],
}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "members.value", "value": "u3"},
        {"op": "replace", "path": "members.value", "value": "u3"},
        {"op": "replace", "path": 'members[value eq "u1"].value', "value": "u3"},
        {"op": "replace", "path": 'members[value eq "u1"]', "value": {"value": "u3"}},
        {"op": "remove", "path": 'members[value eq "u1"].value'},
    ],
    ids=["add-sub", "replace-sub", "replace-filtered-sub", "replace-filtered-value", "remove-sub"],
)
def test_rfc7643_2_2_a_members_immutable_value_is_never_rewritten(operation):
    """`add members.value` set every member's value to "u3": the group was left with one
    member, the others dropped without a remove (scim2-server: 400 mutability)."""
    with pytest.raises(Mutability):
        patch(operation, doc=GROUP_DOC, kind=GROUP_KIND)


def test_a_filtered_replace_keeping_the_members_value_is_allowed():
    operation = {"op": "replace", "path": 'members[value eq "u1"]', "value": {"value": "u1"}}
    assert patch(operation, doc=GROUP_DOC, kind=GROUP_KIND)["members"] == GROUP_DOC["members"]
