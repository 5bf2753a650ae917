"""Hypothesis settings and JSON strategies shared by the fuzz tests of every protocol."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support.hostile import HOSTILE_VALUES

# Derandomized so that a run of the suite is repeatable; to explore, set FUZZ_RANDOM=1 (and
# FUZZ_EXAMPLES=2000, say).
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any character but a surrogate (a URL cannot carry one); NUL and controls included.
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
TEXT_WITH_SURROGATES = st.text(st.characters(), max_size=12)


def json_values(names: Sequence[str]) -> st.SearchStrategy[Any]:
    """JSON documents whose object keys are often the protocol's own `names`."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(10**25), max_value=10**25),
            st.floats(allow_nan=False, allow_infinity=False),
            TEXT_WITH_SURROGATES,
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(names), TEXT_WITH_SURROGATES), children, max_size=4
            ),
        ),
        max_leaves=12,
    )


def with_fragment(document: Any, fragment: str, at: int) -> bytes:
    """`document` as JSON with a raw fragment spliced in (often where a value starts)."""
    text = json.dumps(document)
    colon = text.find(":", at % (len(text) + 1))
    cut = colon + 1 if colon >= 0 else at % (len(text) + 1)
    return (text[:cut] + fragment + text[cut:]).encode()


def raw_bodies(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies: JSON documents, the same with a hostile value spliced in, truncated
    JSON, and arbitrary bytes."""
    return st.one_of(
        documents.map(lambda doc: json.dumps(doc).encode()),
        st.builds(
            with_fragment,
            documents,
            st.sampled_from([fragment for fragment, _ in HOSTILE_VALUES.values()]),
            st.integers(0, 200),
        ),
        st.builds(lambda doc, n: json.dumps(doc).encode()[:n], documents, st.integers(0, 40)),
        st.binary(max_size=40),
    )


def hold_tasks(monkeypatch: Any) -> list[tuple[str, Any]]:
    """Record the Celery tasks a request would send instead of sending them, so a worker left
    running by an earlier test cannot change the database between two snapshots."""
    from worker.celery_app import celery_app

    held: list[tuple[str, Any]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: held.append((name, kw)))
    return held
