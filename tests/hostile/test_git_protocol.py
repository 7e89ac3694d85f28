"""Hostile git smart-HTTP input against two real sites (issue 9, items 2, 4 and 7).

Every case is sent to the primary and to a secondary whose replica is current, plain and
gzipped. The secondary serves an upload-pack POST itself when its wants check passes and
relays it to the primary otherwise (and every push), so both of its paths are exercised; the
route each answer took is checked at the end. Each answer must be a complete HTTP response
with the status and the message git itself gives, no ref may change, every service must stay
healthy and no service may log a traceback.

Inputs tried per category (the closing note reports these): listed in `CATEGORY_COUNTS`.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import Account, Api, clone_url, git
from geo_support import served_locally, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geogit.common.pktline import DELIM_PKT, FLUSH_PKT, RESPONSE_END_PKT, pkt_line
from geogit.common.tansu import TansuBroker
from geogit.devstack.site import Site
from geogit.devstack.testing import running_sites
from geogit.storage.testing import make_work_tree

UNKNOWN = "1234567890" * 4
ZERO = "0" * 40
SITE_NAMES = ("primary", "secondary")
ENCODINGS = ("identity", "gzip")
# A small bound for this module's sites keeps the bombs quick; the default is 128 MiB.
MAX_INFLATED = 4 * 1024 * 1024
HYPOTHESIS_EXAMPLES = 60


def _want(oid: str) -> bytes:
    return pkt_line(f"want {oid}\n".encode())


def _v2(command: str, *arguments: bytes) -> bytes:
    return pkt_line(f"command={command}\n".encode()) + DELIM_PKT + b"".join(arguments) + FLUSH_PKT


Body = Callable[[str], bytes]
# name: (service, Git-Protocol, body given the head, status, exact message given the head)
PROTOCOL_ERRORS: dict[str, tuple[str, str, Body, int, str]] = {
    "upload-pack empty body": (
        "git-upload-pack",
        "",
        lambda h: b"",
        400,
        "fatal: the remote end hung up unexpectedly",
    ),
    "upload-pack truncated pkt-line": (
        "git-upload-pack",
        "",
        lambda h: b"0032want ",
        400,
        "fatal: the remote end hung up unexpectedly",
    ),
    "want of a non-hex id": (
        "git-upload-pack",
        "",
        lambda h: _want("zz" + h[2:]) + FLUSH_PKT,
        400,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'want zz{h2}'",
    ),
    "want of a partial id": (
        "git-upload-pack",
        "",
        lambda h: _want(h[:20]) + FLUSH_PKT,
        400,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'want {h20}'",
    ),
    "have before any want": (
        "git-upload-pack",
        "",
        lambda h: pkt_line(f"have {h}\n".encode()) + FLUSH_PKT,
        400,
        "fatal: git upload-pack: protocol error, expected to get object ID, not 'have {h}'",
    ),
    "absurd deepen": (
        "git-upload-pack",
        "",
        lambda h: _want(h) + pkt_line(b"deepen 99999999999999999999\n") + FLUSH_PKT,
        400,
        "fatal: Invalid deepen: deepen 99999999999999999999",
    ),
    "v2 unknown command": (
        "git-upload-pack",
        "version=2",
        lambda h: pkt_line(b"command=frobnicate\n") + FLUSH_PKT,
        400,
        "fatal: invalid command 'frobnicate'",
    ),
    "v2 missing command": (
        "git-upload-pack",
        "version=2",
        lambda h: pkt_line(b"agent=x\n") + FLUSH_PKT,
        400,
        "fatal: no command requested",
    ),
    "v2 unknown argument": (
        "git-upload-pack",
        "version=2",
        lambda h: _v2("fetch", pkt_line(b"frob\n")),
        400,
        "fatal: unexpected line: 'frob'",
    ),
    "v2 absurd deepen": (
        "git-upload-pack",
        "version=2",
        lambda h: _v2("fetch", _want(h), pkt_line(b"deepen 99999999999999999999\n")),
        400,
        "fatal: Invalid deepen: deepen 99999999999999999999",
    ),
    "receive-pack empty body": (
        "git-receive-pack",
        "",
        lambda h: b"",
        400,
        "fatal: the remote end hung up unexpectedly",
    ),
    "receive-pack truncated pkt-line": (
        "git-receive-pack",
        "",
        lambda h: b"00a0" + f"{ZERO} {h} refs/heads/x".encode(),
        400,
        "fatal: the remote end hung up unexpectedly",
    ),
    "v2 response-end packet": (
        "git-upload-pack",
        "version=2",
        lambda h: RESPONSE_END_PKT,
        400,
        "malformed pkt-line in request: a response-end packet (0002) is only sent by servers",
    ),
    "receive-pack malformed command": (
        "git-receive-pack",
        "",
        lambda h: pkt_line(b"zzz\n") + FLUSH_PKT,
        400,
        "fatal: protocol error: expected old/new/ref, got 'zzz'",
    ),
}
NOT_OUR_REF: dict[str, tuple[str, Body]] = {
    "want of an unknown object": ("", lambda h: _want(UNKNOWN) + FLUSH_PKT + pkt_line(b"done\n")),
    "v2 want of an unknown object": (
        "version=2",
        lambda h: _v2("fetch", _want(UNKNOWN), pkt_line(b"done\n")),
    ),
}
CATEGORY_COUNTS = {
    "protocol errors (case x site x encoding)": len(PROTOCOL_ERRORS) * 2 * 2,
    "not our ref over HTTP (case x site x encoding)": len(NOT_OUR_REF) * 2 * 2,
    "git fetch of an unknown id (protocol x site)": 2 * 2,
    "gzip bombs (served on each site, relayed, same bytes plain)": 4,
    "hypothesis pkt-line streams": HYPOTHESIS_EXAMPLES,
}
ROUTES_SEEN: dict[str, set[str]] = {name: set() for name in SITE_NAMES}


class Geo:
    """The two sites, a project pushed on the primary and current on the secondary."""

    def __init__(self, primary: Site, secondary: Site, owner: Account, project: dict[str, Any]):
        self.sites = {"primary": primary, "secondary": secondary}
        self.owner = owner
        self.project = project
        self.head = ""
        self.logs_at_start: dict[Path, int] = {}

    def url(self, site: str) -> str:
        return f"{self.sites[site].http_url}/{self.project['path_with_namespace']}.git"

    def post(
        self, site: str, service: str, body: bytes, git_protocol: str = "", gzipped: bool = False
    ) -> httpx.Response:
        headers = {"Content-Type": f"application/x-{service}-request"}
        if git_protocol:
            headers["Git-Protocol"] = git_protocol
        if gzipped:
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body)
        # httpx raises RemoteProtocolError on a response that breaks off: reading it whole
        # is the "well formed" check.
        response = httpx.post(
            f"{self.url(site)}/{service}",
            content=body,
            headers=headers,
            auth=(self.owner.username, self.owner.token),
            timeout=120,
        )
        ROUTES_SEEN[site].add(response.headers.get("Geogit-Route", ""))
        return response

    def refs(self) -> dict[str, str]:
        url = clone_url(self.sites["primary"].http_url, self.project, self.owner)
        lines = git("ls-remote", url).stdout.splitlines()
        return {ref: oid for oid, ref in (line.split("\t") for line in lines)}

    def assert_healthy(self) -> None:
        for site in self.sites.values():
            for url in (
                f"{site.http_url}/-/readiness",
                f"{site.internal_api_url}/-/readiness",
                f"{site.storage_ops_url}/-/readiness",
                f"{site.ssh_ops_url}/-/readiness",
            ):
                assert httpx.get(url, timeout=10).status_code == 200, url

    def log_paths(self) -> list[Path]:
        return [
            site.supervisor.log_path(site.process_name(service))
            for site in self.sites.values()
            for service in ("storage", "edge-proxy")
        ]

    def new_log_text(self) -> str:
        return "".join(
            path.read_bytes()[self.logs_at_start.get(path, 0) :].decode(errors="replace")
            for path in self.log_paths()
        )


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Geo]:
    base = tmp_path_factory.mktemp("hostile-geo")
    bound = {"GEOGIT_MAX_INFLATED_BODY_BYTES": str(MAX_INFLATED)}
    # A broker of its own: its projects' events must not mix with the session primary's.
    with (
        TansuBroker() as broker,
        running_sites(base, broker.bootstrap, extra_env=bound) as (primary, (secondary,), admin),
    ):
        api = Api(primary.http_url, admin.token)
        owner = api.account()
        project = api.project(owner)
        tree = make_work_tree(base / "src")
        git("push", "-q", clone_url(primary.http_url, project, owner), "main", cwd=tree)
        setup = Geo(primary, secondary, owner, project)
        setup.head = git("rev-parse", "HEAD", cwd=tree).stdout.strip()
        wait_until(lambda: served_locally(secondary, project, owner, setup.head), what="a replica")
        setup.logs_at_start = {path: path.stat().st_size for path in setup.log_paths()}
        yield setup
        api.http.close()


@pytest.fixture(scope="module")
def refs_before(geo: Geo) -> dict[str, str]:
    return geo.refs()


def _message(template: str, head: str) -> str:
    return template.format(h=head, h2=head[2:], h20=head[:20]) + "\n"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("site", SITE_NAMES)
@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
def test_protocol_errors_are_400_with_gits_message(
    geo: Geo, refs_before: dict[str, str], case: str, site: str, encoding: str
) -> None:
    service, git_protocol, body, status, message = PROTOCOL_ERRORS[case]
    response = geo.post(site, service, body(geo.head), git_protocol, encoding == "gzip")
    assert (response.status_code, response.text) == (status, _message(message, geo.head))
    assert response.headers["content-type"].startswith("text/plain")
    assert geo.refs() == refs_before


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("site", SITE_NAMES)
@pytest.mark.parametrize("case", list(NOT_OUR_REF))
def test_not_our_ref_is_a_complete_response_with_gits_err_line(
    geo: Geo, refs_before: dict[str, str], case: str, site: str, encoding: str
) -> None:
    git_protocol, body = NOT_OUR_REF[case]
    response = geo.post(site, "git-upload-pack", body(geo.head), git_protocol, encoding == "gzip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-git-upload-pack-result"
    assert response.content == pkt_line(
        f"ERR upload-pack: not our ref {UNKNOWN}".encode()
    ) + pkt_line(f"ERR fatal: git upload-pack: not our ref {UNKNOWN}".encode())
    if site == "secondary":  # the replica lacks the object: the primary answered
        assert response.headers["Geogit-Route"] == "proxy"
    assert geo.refs() == refs_before


@pytest.mark.parametrize("version", ["0", "2"])
@pytest.mark.parametrize("site", SITE_NAMES)
def test_git_fetch_of_an_unknown_id_shows_not_our_ref(
    geo: Geo, tmp_path: Path, site: str, version: str
) -> None:
    git("init", "-q", str(tmp_path / "client"))
    url = clone_url(geo.sites[site].http_url, geo.project, geo.owner)
    fetched = git(
        "-c", f"protocol.version={version}", "fetch", url, UNKNOWN,
        cwd=tmp_path / "client", check=False,
    )  # fmt: skip
    assert fetched.returncode == 128
    assert f"fatal: remote error: upload-pack: not our ref {UNKNOWN}" in fetched.stderr
    assert "transfer closed" not in fetched.stderr and "RPC failed" not in fetched.stderr


def _haves(total: int) -> bytes:
    """Have lines of unknown objects up to `total` bytes: git reads them without answering."""
    have = pkt_line(f"have {UNKNOWN}\n".encode())
    return have * (total // len(have) + 1)


def test_gzip_bomb_is_413_on_both_sites_and_relayed_still_compressed(
    geo: Geo, refs_before: dict[str, str]
) -> None:
    too_large = f"gzip request body inflates to more than {MAX_INFLATED} bytes\n"

    def post(site: str, body: bytes, **extra: str) -> httpx.Response:
        return httpx.post(
            f"{geo.url(site)}/git-upload-pack",
            content=body,
            headers={"Content-Type": "application/x-git-upload-pack-request", **extra},
            auth=(geo.owner.username, geo.owner.token),
            timeout=300,
        )

    haves = _haves(MAX_INFLATED)
    served = gzip.compress(_want(geo.head) + FLUSH_PKT + haves)
    for site in SITE_NAMES:  # the wants check passes: the secondary serves and bounds it
        response = post(site, served, **{"Content-Encoding": "gzip"})
        assert (response.status_code, response.text) == (413, too_large), site
        assert response.headers["Geogit-Route"] == "local"
    # A want by name is not checked: the secondary relays it to the primary. Had it inflated
    # the body, the primary would get plain bytes and no gzip body to bound.
    unchecked = pkt_line(b"want-ref refs/heads/main\n") + FLUSH_PKT + haves
    relayed = post("secondary", gzip.compress(unchecked), **{"Content-Encoding": "gzip"})
    assert (relayed.status_code, relayed.text) == (413, too_large)
    assert relayed.headers["Geogit-Route"] == "proxy"
    # The same bytes plain are git's to judge, however large.
    plain = post("primary", unchecked)
    assert plain.status_code == 400
    assert plain.text == (
        "fatal: git upload-pack: protocol error, expected to get object ID,"
        " not 'want-ref refs/heads/main'\n"
    )
    assert geo.refs() == refs_before
    geo.assert_healthy()


_HEX = st.text("0123456789abcdef", min_size=0, max_size=64)
_WORDS = st.sampled_from(
    [
        b"want", b"have", b"done", b"deepen", b"deepen-since", b"deepen-not", b"shallow",
        b"filter", b"command=fetch", b"command=ls-refs", b"command=object-info",
        b"command=frobnicate", b"agent=x", b"object-format=sha1", b"thin-pack", b"ofs-delta",
        b"no-progress", b"include-tag", b"want-ref", b"ref-prefix", b"peel", b"symrefs",
        b"report-status", b"side-band-64k", b"push-options", b"atomic", b"refs/heads/main",
        b"refs/heads/x", b"\x00", b"PACK", b"ERR", b"0000", b"",
    ]
)  # fmt: skip


@st.composite
def _payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # protocol-shaped: words and ids
        parts = draw(st.lists(st.one_of(_WORDS, _HEX.map(str.encode)), min_size=1, max_size=5))
        return b" ".join(parts) + draw(st.sampled_from([b"\n", b""]))
    if kind == 1:  # a push command that cannot match: unknown old id
        new = draw(_HEX.filter(lambda h: len(h) == 40) | st.just(UNKNOWN))
        return f"{UNKNOWN} {new} refs/heads/h{draw(st.integers(0, 9))}\n".encode()
    if kind == 2:
        return draw(st.binary(max_size=200))
    return draw(st.sampled_from([b"want ", b"have ", b"deepen "])) + draw(_HEX).encode() + b"\n"


@st.composite
def _packets(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return pkt_line(draw(_payloads()))
    if kind == 6:
        return draw(st.sampled_from([FLUSH_PKT, DELIM_PKT, RESPONSE_END_PKT, b"0003"]))
    if kind == 7:  # a length that lies about the payload
        payload = draw(st.binary(max_size=60))
        return b"%04x" % draw(st.integers(4, 0xFFFF)) + payload
    if kind == 8:  # garbled length characters
        return draw(st.binary(min_size=1, max_size=4)) + draw(st.binary(max_size=20))
    return pkt_line(draw(_payloads()))[: draw(st.integers(0, 6))]  # truncated


_PKT_LINE = re.compile(rb"\A(?:[0-9a-f]{4})")


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    site=st.sampled_from(SITE_NAMES),
    service=st.sampled_from(["git-upload-pack", "git-receive-pack"]),
    git_protocol=st.sampled_from(["", "version=2"]),
    gzipped=st.booleans(),
    packets=st.lists(_packets(), max_size=12),
    with_head=st.booleans(),
)
def test_generated_pkt_line_streams_never_get_a_5xx(
    geo: Geo,
    refs_before: dict[str, str],
    site: str,
    service: str,
    git_protocol: str,
    gzipped: bool,
    packets: list[bytes],
    with_head: bool,
) -> None:
    # Half of the streams start with a valid want, so the secondary's local path sees them.
    lead = _want(geo.head) if with_head and service == "git-upload-pack" else b""
    body = lead + b"".join(packets)
    response = geo.post(site, service, body, git_protocol, gzipped)
    assert response.status_code < 500, (response.status_code, response.text, body)
    if response.status_code == 200:
        assert response.headers["content-type"] == f"application/x-{service}-result"
        assert not response.content or _PKT_LINE.match(response.content), response.content[:80]
    else:
        assert response.status_code in (400, 413), (response.status_code, response.text)
        assert response.text.strip(), "a refusal says why"
    _EXAMPLES.append(site)


_EXAMPLES: list[str] = []


def test_after_the_hostile_input_nothing_changed_and_nothing_broke(
    geo: Geo, refs_before: dict[str, str]
) -> None:
    """Runs last in the module: refs, health, the routes taken and the logs."""
    assert geo.refs() == refs_before
    geo.assert_healthy()
    assert ROUTES_SEEN["secondary"] >= {"local", "proxy"}, ROUTES_SEEN
    assert ROUTES_SEEN["primary"] == {"local"}, ROUTES_SEEN
    assert len(_EXAMPLES) >= HYPOTHESIS_EXAMPLES // 2, "the generated streams ran"
    logs = geo.new_log_text()
    assert "Traceback" not in logs
    assert "different Context" not in logs
    assert "ASGI callable returned without completing response" not in logs
    print(f"\ninputs tried per category: {CATEGORY_COUNTS}; hypothesis ran {len(_EXAMPLES)}")
