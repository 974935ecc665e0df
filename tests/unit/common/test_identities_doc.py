"""The identities table of docs/security.md is the one generated from mpr_common/identities.py, and no
identity but the setup owner may subscribe to another identity's inbox."""

from __future__ import annotations

from pathlib import Path

from mpr_common import subjects as s
from mpr_common.identities import IDENTITIES, inbox_prefix, render_markdown
from mpr_common.settings import NatsSettings
from tests.system.bus_clients import subject_matches

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"
START, END = "<!-- identities table: generated -->\n", "<!-- end of identities table -->"


def test_the_table_in_docs_security_is_the_generated_one():
    text = DOC.read_text()
    assert START in text and END in text, "docs/security.md lost its generated identities table"
    documented = text[text.index(START) + len(START) : text.index(END)]
    assert documented == render_markdown(), (
        "docs/security.md differs from the code: paste `python -m mpr_common.identities --markdown` "
        "between its markers"
    )


def test_no_identity_but_setup_may_read_another_identitys_replies():
    for ident in IDENTITIES.values():
        if ident.name == "setup":
            continue
        for other in IDENTITIES:
            if other == ident.name:
                continue
            reply = f"{inbox_prefix(other)}.abc.1"
            readable = any(subject_matches(p, reply) for p in ident.subscribe_allow())
            denied = any(subject_matches(p, reply) for p in ident.subscribe_deny())
            assert not readable or denied, (ident.name, other)
        # … and its own replies are readable
        assert any(subject_matches(p, f"{inbox_prefix(ident.name)}.abc.1") for p in ident.subscribe_allow())


def test_every_identity_connects_with_its_own_inbox_prefix():
    for name in IDENTITIES:
        opts = NatsSettings(user=name, password="x").connect_options("test")
        assert opts["inbox_prefix"] == inbox_prefix(name)
    assert "inbox_prefix" not in NatsSettings().connect_options("anonymous")


def test_only_the_transcoders_may_say_a_package_is_playable():
    # A package's playability comes from the transcoder that publishes its playlists; no other service
    # (nor an outside publisher) may announce it.
    may = {
        i.name
        for i in IDENTITIES.values()
        if i.name != "setup" and any(subject_matches(p, s.JOB_PLAYABLE) for p in i.publish)
    }
    assert may == {"transcoder"}
