"""Names someone else chose, with invisible or direction-changing characters (U+202E
RIGHT-TO-LEFT OVERRIDE, isolates, zero-width space): every console page shows them isolated
(<bdi>) and marked ("<U+202E>"), never raw, and legitimate names of any script as they are."""

from __future__ import annotations

import re

from models.actions import lifecycle, reviews
from tests.console.conftest import sign_in
from tests.support import factories as f

RAW = re.compile("[\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


def test_names_are_isolated_and_their_invisible_characters_marked_on_every_page(
    client, org, session
):
    org.member.name = "\u202eecila"
    org.team.name = "\u2067Research\u2069"
    f.make_key(session, org.org, owner=org.member).name = "key\u200b 1"
    f.make_key(session, org.org, owner=org.outsider).name = "key\u200b 2"
    org.outsider.name = "שרה כהן \U0001f469\u200d\U0001f4bb"
    revocation = lifecycle.revoke(session, user=org.outsider, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
    sign_in(client, org.admin_token)

    person = client.get(f"/console/people/{org.member.id}").get_data(as_text=True)
    assert "<h1><bdi>&lt;U+202E&gt;ecila</bdi>" in person
    assert "<bdi>key&lt;U+200B&gt; 1</bdi>" in person
    assert "<bdi>&lt;U+2067&gt;Research&lt;U+2069&gt;</bdi>" in person
    review_page = client.get(f"/console/reviews/{review.id}").get_data(as_text=True)
    assert "<bdi>key&lt;U+200B&gt; 2</bdi>" in review_page
    other = client.get(f"/console/people/{org.outsider.id}").get_data(as_text=True)
    assert "<h1><bdi>שרה כהן \U0001f469\u200d\U0001f4bb</bdi>" in other  # kept as written
    for page in (person, review_page, client.get("/console/reviews").get_data(as_text=True)):
        assert not RAW.search(page), RAW.findall(page)
