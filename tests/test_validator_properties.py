"""Properties of the taskId and callbackUrl validators, over generated input (Hypothesis)."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import pytest
import yarl
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from server.schemas import MAX_CALLBACK_URL_LENGTH, AnalyzeRequest, canonical_task_id, checked_callback_url

CALLBACK = "http://example.com/callback"
TASK_ID = "550e8400-e29b-41d4-a716-446655440000"
PROPERTIES = settings(max_examples=200, deadline=None, database=None)


# Named functions, not lambdas, in strategies: Hypothesis parses a lambda's source to describe it,
# and CPython 3.11's parser can fail there ("AST constructor recursion depth mismatch").
def not_version_4(value: uuid.UUID) -> bool:
    return value.version != 4


def not_36_long(text: str) -> bool:
    return len(text) != 36


def no_edge_hyphen(text: str) -> bool:
    return text[0] != "-" and text[-1] != "-"


def fits_dns(name: str) -> bool:
    return len(name) <= 253


def bracketed(address: object) -> str:
    return f"[{address}]"


def port_suffix(port: int) -> str:
    return f":{port}"


def joined_path(parts: list[str]) -> str:
    return "".join(f"/{part}" for part in parts)


def query_suffix(query: str) -> str:
    return f"?{query}"


def is_space_or_control(char: str) -> bool:
    return char.isspace() or ord(char) < 0x20 or char == "\x7f"


def with_http_scheme(rest: str) -> str:
    return "http://" + rest


def request(task_id: str = TASK_ID, callback_url: str = CALLBACK) -> AnalyzeRequest:
    return AnalyzeRequest.model_validate({"taskId": task_id, "taskType": "pano", "callbackUrl": callback_url})


# --- taskId ---------------------------------------------------------------------------------------


@st.composite
def any_case(draw: st.DrawFn, text: str) -> str:
    """`text` with each letter in upper or lower case."""
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(ch.upper() if flip else ch for ch, flip in zip(text, flips, strict=True))


uuid4s = st.uuids(version=4).map(str)


@PROPERTIES
@given(st.data(), uuid4s)
def test_a_canonical_uuid4_in_any_case_is_accepted_in_lowercase(data: st.DataObject, canonical: str) -> None:
    spelled = data.draw(any_case(canonical))
    assert canonical_task_id(spelled) == canonical
    assert request(task_id=spelled).taskId == canonical


@PROPERTIES
@given(st.uuids().filter(not_version_4))
def test_other_uuid_versions_are_refused(other: uuid.UUID) -> None:
    with pytest.raises(ValueError, match="UUID version 4"):
        canonical_task_id(str(other))


@PROPERTIES
@given(st.uuids(version=4), st.sampled_from("01234567cdefCDEF"))
def test_a_uuid4_outside_the_rfc_4122_variant_is_refused(base: uuid.UUID, variant: str) -> None:
    text = str(base)
    with pytest.raises(ValueError, match="UUID version 4"):
        canonical_task_id(f"{text[:19]}{variant}{text[20:]}")


WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u2003", "\u3000"])


@st.composite
def other_spellings(draw: st.DrawFn) -> str:
    """A valid UUID v4 in any spelling but the canonical 36 characters."""
    canonical = draw(any_case(draw(uuid4s)))
    kind = draw(st.sampled_from(["braces", "urn", "no hyphens", "space before", "space after", "short", "long"]))
    if kind == "braces":
        return f"{{{canonical}}}"
    if kind == "urn":
        return f"urn:uuid:{canonical}"
    if kind == "no hyphens":
        return canonical.replace("-", "")
    if kind == "space before":
        return draw(WHITESPACE) + canonical
    if kind == "space after":
        return canonical + draw(WHITESPACE)
    at = draw(st.integers(0, 35))
    return canonical[:at] + canonical[at + 1 :] if kind == "short" else canonical[:at] + "0" + canonical[at:]


@PROPERTIES
@given(other_spellings())
def test_other_spellings_of_a_uuid4_are_refused(spelled: str) -> None:
    with pytest.raises(ValueError, match="UUID version 4"):
        canonical_task_id(spelled)
    with pytest.raises(ValidationError):
        request(task_id=spelled)


@PROPERTIES
@given(st.text())
def test_any_text_is_a_canonical_id_or_the_documented_error(text: str) -> None:
    try:
        canonical = canonical_task_id(text)
    except ValueError as exc:
        assert "UUID version 4" in str(exc)
    else:
        assert canonical == text.lower()
        assert uuid.UUID(canonical).version == 4
        assert str(uuid.UUID(canonical)) == canonical


@PROPERTIES
@given(st.text().filter(not_36_long))
def test_text_that_is_not_36_characters_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="UUID version 4"):
        canonical_task_id(text)


# --- callbackUrl ----------------------------------------------------------------------------------

LETTERS_DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
label = st.text(LETTERS_DIGITS + "-", min_size=1, max_size=63).filter(no_edge_hyphen)
dns_names = st.lists(label, min_size=1, max_size=4).map(".".join).filter(fits_dns)
ipv4_hosts = st.ip_addresses(v=4).map(str)
ipv6_hosts = st.ip_addresses(v=6).map(bracketed)
hosts = st.one_of(dns_names, ipv4_hosts, ipv6_hosts)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(port_suffix))
# RFC 3986 path and query characters, percent-encoded octets included.
segment = st.text(LETTERS_DIGITS + "-._~!$&'()*+,;=:@", max_size=20) | st.just("%2F")
paths = st.lists(segment, max_size=5).map(joined_path)
queries = st.one_of(st.just(""), st.text(LETTERS_DIGITS + "=&-_.", max_size=30).map(query_suffix))
schemes = st.sampled_from(["http", "https", "HTTP", "Https"])


@st.composite
def callback_urls(draw: st.DrawFn, scheme: st.SearchStrategy[str] = schemes) -> str:
    url = f"{draw(scheme)}://{draw(hosts)}{draw(ports)}{draw(paths)}{draw(queries)}"
    assume(len(url) <= MAX_CALLBACK_URL_LENGTH)
    return url


@PROPERTIES
@given(callback_urls())
def test_absolute_http_urls_with_a_host_are_accepted_as_given(url: str) -> None:
    assert checked_callback_url(url) == url
    assert request(callback_url=url).callbackUrl == url


@PROPERTIES
@given(callback_urls(), st.integers(1, 100))
def test_urls_over_2048_characters_are_refused(url: str, extra: int) -> None:
    padded = url + ("" if "?" in url else "?") + "a" * (MAX_CALLBACK_URL_LENGTH - len(url) + extra)
    assert len(padded) > MAX_CALLBACK_URL_LENGTH
    with pytest.raises(ValueError, match="at most 2048"):
        checked_callback_url(padded)
    with pytest.raises(ValidationError):
        request(callback_url=padded)


@PROPERTIES
@given(callback_urls(st.sampled_from(["ftp", "file", "ws", "wss", "gopher", "javascript", "data", "httpx", "htp"])))
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        checked_callback_url(url)


@PROPERTIES
@given(callback_urls(), st.sampled_from(["", "/", "//", "http:", "http:/", "://"]))
def test_relative_or_schemeless_urls_are_refused(url: str, prefix: str) -> None:
    without_scheme = url.split("://", 1)[1]
    with pytest.raises(ValueError, match="callbackUrl"):
        checked_callback_url(prefix + without_scheme)


@PROPERTIES
@given(schemes, ports, paths)
def test_urls_without_a_host_are_refused(scheme: str, port: str, path: str) -> None:
    with pytest.raises(ValueError, match="callbackUrl"):
        checked_callback_url(f"{scheme}://{port}{path}")


@PROPERTIES
@given(callback_urls(), st.characters(codec="utf-8").filter(is_space_or_control))
def test_whitespace_or_control_characters_anywhere_are_refused(url: str, bad: str) -> None:
    for at in (0, len(url) // 2, len(url)):
        with pytest.raises(ValueError, match="whitespace or control"):
            checked_callback_url(url[:at] + bad + url[at:])


@PROPERTIES
@given(callback_urls(), st.text(LETTERS_DIGITS + "-._~!$&'()*+,;=:", min_size=1, max_size=20))
def test_userinfo_is_accepted_as_given(url: str, userinfo: str) -> None:
    # Nothing refuses credentials in a callback URL (the sender then authenticates with them).
    scheme, rest = url.split("://", 1)
    with_userinfo = f"{scheme}://{userinfo}@{rest}"
    assert checked_callback_url(with_userinfo) == with_userinfo
    assert httpx.URL(with_userinfo).raw_host == httpx.URL(url).raw_host


# Text that looks like URLs often: scheme fragments, separators, brackets, escapes.
url_like = st.lists(
    st.sampled_from(
        ["http", "https", "://", "/", "\\", ":", "@", "[", "]", "::1", "%", "%25", "%2f", "%00", ".", "?", "#"]
        + ["a", "0", "127.0.0.1", "example.com", "xn--", "ü", "^", "<", ">", "|", "{", "`", "'", '"', ";", "80"]
    ),
    max_size=16,
).map("".join)


@PROPERTIES
@given(st.one_of(st.text(), url_like))
def test_any_text_is_accepted_unchanged_or_the_documented_error(text: str) -> None:
    try:
        accepted = checked_callback_url(text)
    except ValueError as exc:
        assert str(exc).startswith("callbackUrl"), exc
        with pytest.raises(ValidationError):
            request(callback_url=text)
    else:
        assert accepted == text
        assert request(callback_url=text).callbackUrl == text


@PROPERTIES
@given(st.one_of(url_like.map(with_http_scheme), callback_urls()))
def test_an_accepted_url_can_be_sent_to(text: str) -> None:
    """The callback sender (aiohttp, so yarl) must read the same absolute URL the policy checked (httpx)."""
    try:
        checked_callback_url(text)
    except ValueError:
        return
    sent = yarl.URL(text)
    assert sent.scheme in ("http", "https")
    assert sent.raw_host
    assert same_host(sent.raw_host, httpx.URL(text).raw_host.decode("ascii"))


def same_host(one: str, other: str) -> bool:
    try:
        return ipaddress.ip_address(one.strip("[]")) == ipaddress.ip_address(other.strip("[]"))
    except ValueError:
        return one.rstrip(".").lower() == other.rstrip(".").lower()
