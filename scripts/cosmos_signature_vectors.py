#!/usr/bin/env python3
"""Generate Cosmos DB master-key signature test vectors, using the official Python SDK as the oracle.

Usage:
    python3 scripts/cosmos_signature_vectors.py > tests/vectors/cosmos_signatures.json
    python3 scripts/cosmos_signature_vectors.py --out tests/vectors/cosmos_signatures.json

Requires the packages pinned in requirements-test.txt (azure-cosmos==4.17.1).

Oracle
------
Each generated vector goes through the SDK's own request-header builder,
``azure.cosmos._base.GetHeaders``. The SDK builds every request's headers with it:

* it sets ``x-ms-date`` from ``email.utils.formatdate(timeval=None, localtime=False, usegmt=True)``.
  This script pins that value by patching ``azure.cosmos._base.formatdate`` so it returns the
  vector's date.
* it calls ``azure.cosmos.auth._get_authorization_header``. That function applies the
  lower-casing rule for resource-id (non name-based) links and then calls the private
  module-level function ``auth.__get_authorization_token_using_master_key``. That builds
  ``"{verb}\\n{resource_type}\\n{link}\\n{x_date}\\n{http_date}\\n"`` with verb, type and dates
  lower-cased, an HMAC-SHA256 with the base64-decoded key, and returns
  ``type=master&ver=1.0&sig=<base64>``.
* it URL-encodes the token with ``urllib.parse.quote(token, "-_.!~*'()")``. That gives the
  ``Authorization`` header value exactly as the SDK sends it, with uppercase hex (``%3D``, ``%26``, ``%2B``, ``%2F``).

In azure-cosmos 4.17.1 the module is ``azure/cosmos/auth.py``. Older releases and the GitHub
tree call it ``_auth.py``. The script also calls ``auth._get_authorization_header`` and
``auth.__get_authorization_token_using_master_key`` directly, and checks that both match what
``GetHeaders`` produced.

Independent cross-check
-----------------------
For every vector, plain ``hmac``/``hashlib``/``base64`` code recomputes the signature from the
string to sign. A hand-written percent-encoder recomputes the header value. Any mismatch with
the SDK aborts the run with exit status 1 and writes nothing. The SDK does not expose the
string to sign, so the ``string_to_sign`` field is built here by the documented formula. The
cross-check proves that the SDK signed exactly that text.

Links: name-based only
----------------------
The SDK lower-cases the signing link when it is *not* name-based. It decides that with
``_base.IsNameBased``: a link is treated as resource-id (RID) based when the database
segment (``dbs/<x>``) is exactly 8 characters that base64-decode to 4 bytes (for example
``dbs/AbCdEf==``). The Node SDK does not do this, and this project only uses name-based links
(``dbs/acr/colls/events/docs/<id>``). So no vector uses a database name that looks like an 8-char
RID, and the script aborts if one does. Ids inside a name-based link keep their case, and they
are signed raw (not percent-encoded).

JSON fields per vector
----------------------
name, source, operation, verb (the input as given, any case), resource_type, resource_link
(the signing link: no leading slash, raw id), date (the ``x-ms-date`` header value),
key (base64), string_to_sign, signature (base64), authorization (the URL-encoded header value
exactly as the SDK sends it). Published vectors also carry the value as it was published
(``published_signature`` / ``published_authorization``). The two kinds of published vectors
are marked ``"source": "microsoft-docs"`` and ``"source": "azure-sdk-for-rust"``. Generated
vectors have ``"source": "azure-cosmos-python-sdk"``.

The output is deterministic: no clock, no unseeded randomness, sorted iteration order.
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import random
import sys
import types
import urllib.parse
from unittest import mock

import azure.cosmos
from azure.cosmos import _base, auth, http_constants

SCRIPT_PATH = "scripts/cosmos_signature_vectors.py"

# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------
# Well-known key of every Cosmos DB emulator (protocols.md §C4).
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
# Key of the "Example Encoding" in Microsoft's "Access control in the Azure Cosmos DB SQL API".
DOCS_KEY = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw=="
# Key of azure-sdk-for-rust test generate_authorization_for_primary_key_0.
RUST_KEY_0 = "8F8xXXOptJxkblM1DBXW7a6NMI5oE8NnwPGYBmwxLCKfejOK7B7yhcCHMGvN3PBrlMLIOeol1Hv9RCdzAZR5sg=="
# Truncated docs key of azure-sdk-for-rust test generate_authorization_for_primary_key_1.
RUST_KEY_1 = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxL"


def seeded_key(seed: int) -> str:
    """A 64-byte key (the size of a real Cosmos account key), base64, from a fixed seed."""
    return base64.b64encode(random.Random(seed).getrandbits(512).to_bytes(64, "big")).decode("ascii")


RANDOM_KEY_A = seeded_key(20240601)
RANDOM_KEY_B = seeded_key(1123)

# --------------------------------------------------------------------------------------------
# Dates (RFC 1123 / RFC 7231 IMF-fixdate, always GMT). Each is checked below to be a real
# calendar date with the right weekday, in the exact form email.utils.formatdate produces.
# --------------------------------------------------------------------------------------------
DATE_DOCS = "Thu, 27 Apr 2017 00:51:12 GMT"   # docs example date
DATE_RFC = "Tue, 01 Nov 1994 08:12:31 GMT"    # RFC 7231 / C-AUTH example date
DATE_LEAP = "Sat, 29 Feb 2020 23:59:59 GMT"
DATE_NYE = "Wed, 31 Dec 2025 12:00:00 GMT"
DATE_JAN = "Mon, 05 Jan 2026 07:08:09 GMT"
DATE_SEP = "Fri, 13 Sep 2024 00:00:00 GMT"
DATE_JUL = "Sun, 06 Jul 2031 18:30:45 GMT"
DATE_1900 = "Mon, 01 Jan 1900 01:00:00 GMT"   # Rust SDK test date

# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------
DB = "dbs/acr"
COLL = "dbs/acr/colls/events"
EVENT_ID = "cb8c3971-9adc-488b-bdd8-43cbb4974ff5"


def doc(doc_id: str, coll: str = COLL) -> str:
    return f"{coll}/docs/{doc_id}"


LONG_ID = ("acr-event-" + "0123456789abcdef" * 16)[:255]
assert len(LONG_ID) == 255

# (name, operation, verb, resource_type, resource_link, date, key)
GENERATED = [
    # --- bootstrap: databases and collections (name-based) ---
    ("create-database", "create database (POST /dbs)", "POST", "dbs", "", DATE_DOCS, EMULATOR_KEY),
    ("list-databases", "list databases (GET /dbs)", "get", "dbs", "", DATE_NYE, EMULATOR_KEY),
    ("read-database", "read database (GET /dbs/acr)", "GET", "dbs", DB, DATE_RFC, DOCS_KEY),
    ("delete-database", "delete database (DELETE /dbs/acr)", "DELETE", "dbs", DB, DATE_JAN, RANDOM_KEY_A),
    ("create-collection", "create collection (POST /dbs/acr/colls)", "POST", "colls", DB, DATE_DOCS, EMULATOR_KEY),
    ("create-collection-lowercase-verb", "create collection (POST /dbs/acr/colls)", "post", "colls", DB, DATE_LEAP, RANDOM_KEY_B),
    ("read-collection", "read collection (GET /dbs/acr/colls/events)", "GET", "colls", COLL, DATE_SEP, EMULATOR_KEY),
    ("delete-collection", "delete collection (DELETE /dbs/acr/colls/events)", "Delete", "colls", COLL, DATE_JUL, DOCS_KEY),
    ("read-pkranges", "read partition key ranges (GET /dbs/acr/colls/events/pkranges)", "GET", "pkranges", COLL, DATE_NYE, EMULATOR_KEY),
    ("read-pkranges-random-key", "read partition key ranges (GET /dbs/acr/colls/events/pkranges)", "get", "pkranges", COLL, DATE_JAN, RANDOM_KEY_B),
    ("mixed-case-db-coll-names", "read collection with mixed-case names (GET /dbs/AcrEvents/colls/WebHookEvents)", "GET", "colls", "dbs/AcrEvents/colls/WebHookEvents", DATE_DOCS, EMULATOR_KEY),
    # --- document feed operations: sign the collection link with type docs ---
    ("create-document", "create document (POST /dbs/acr/colls/events/docs)", "POST", "docs", COLL, DATE_DOCS, EMULATOR_KEY),
    ("upsert-document", "upsert document (POST .../docs + x-ms-documentdb-is-upsert)", "POST", "docs", COLL, DATE_JAN, RANDOM_KEY_A),
    ("query-documents", "query documents (POST .../docs + x-ms-documentdb-isquery)", "post", "docs", COLL, DATE_SEP, DOCS_KEY),
    ("list-documents", "read document feed (GET /dbs/acr/colls/events/docs)", "GET", "docs", COLL, DATE_LEAP, EMULATOR_KEY),
    # --- point operations on one document: sign the document link ---
    ("read-document", "read document", "GET", "docs", doc(EVENT_ID), DATE_DOCS, EMULATOR_KEY),
    ("delete-document", "delete document", "DELETE", "docs", doc(EVENT_ID), DATE_DOCS, EMULATOR_KEY),
    ("replace-document", "replace document", "PUT", "docs", doc(EVENT_ID), DATE_NYE, RANDOM_KEY_A),
    ("patch-document", "patch document", "PATCH", "docs", doc(EVENT_ID), DATE_JUL, EMULATOR_KEY),
    ("patch-document-lowercase-verb", "patch document", "patch", "docs", doc(EVENT_ID), DATE_RFC, RANDOM_KEY_B),
    ("read-document-id-spaces", "read document whose id contains spaces", "GET", "docs", doc("my event id 1"), DATE_SEP, EMULATOR_KEY),
    ("read-document-id-unicode", "read document whose id contains non-ASCII letters", "GET", "docs", doc("événement-Größe-日本語"), DATE_NYE, EMULATOR_KEY),
    ("delete-document-id-unicode", "delete document whose id contains non-ASCII letters", "DELETE", "docs", doc("événement-Größe-日本語"), DATE_JAN, DOCS_KEY),
    ("read-document-id-emoji", "read document whose id contains emoji (astral plane)", "GET", "docs", doc("push-🚀-📦-v1"), DATE_LEAP, EMULATOR_KEY),
    ("put-document-id-emoji", "replace document whose id contains emoji", "PUT", "docs", doc("push-🚀-📦-v1"), DATE_JUL, RANDOM_KEY_A),
    ("read-document-id-reserved-chars", "read document whose id contains + = & ' ( )", "GET", "docs", doc("a+b=c&d'e(f)"), DATE_DOCS, EMULATOR_KEY),
    ("delete-document-id-reserved-chars", "delete document whose id contains + = & ' ( )", "delete", "docs", doc("a+b=c&d'e(f)"), DATE_SEP, RANDOM_KEY_B),
    ("read-document-id-colon", "read document whose id contains colons", "GET", "docs", doc("myregistry.azurecr.io:hello-world:v1"), DATE_RFC, EMULATOR_KEY),
    ("read-document-id-mixed-case", "read document whose id is mixed case (case is kept)", "GET", "docs", doc("HelloWorld-V1-MiXeD"), DATE_JAN, EMULATOR_KEY),
    ("read-document-id-lower-case", "same id as read-document-id-mixed-case, lower-cased: signature must differ", "GET", "docs", doc("helloworld-v1-mixed"), DATE_JAN, EMULATOR_KEY),
    ("read-document-id-255-chars", "read document whose id is 255 characters", "GET", "docs", doc(LONG_ID), DATE_NYE, EMULATOR_KEY),
    ("upsert-document-mixed-case-coll", "upsert into mixed-case names (POST /dbs/AcrEvents/colls/WebHookEvents/docs)", "Post", "docs", "dbs/AcrEvents/colls/WebHookEvents", DATE_LEAP, RANDOM_KEY_A),
    ("read-document-mixed-case-coll", "read document in mixed-case names", "GET", "docs", doc(EVENT_ID, "dbs/AcrEvents/colls/WebHookEvents"), DATE_SEP, RANDOM_KEY_B),
]

# Published vectors (protocols.md §C1.5). Each is recomputed through the SDK and compared.
PUBLISHED = [
    {
        "name": "published-microsoft-docs-example-encoding",
        "source": "microsoft-docs",
        "reference": "https://learn.microsoft.com/rest/api/cosmos-db/access-control-on-cosmosdb-resources (Example Encoding)",
        "operation": "read database",
        "verb": "GET", "resource_type": "dbs", "resource_link": "dbs/ToDoList",
        "date": DATE_DOCS, "key": DOCS_KEY,
        "published_signature": "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=",
        # The docs use .NET HttpUtility.UrlEncode: lowercase hex. Compare case-insensitively.
        "published_authorization": "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d",
    },
    {
        "name": "published-azure-sdk-for-rust-primary-key-0",
        "source": "azure-sdk-for-rust",
        "reference": "Azure/azure-sdk-for-rust sdk/cosmos/azure_data_cosmos/src/pipeline/authorization_policy.rs "
                     "@05b66535e31d generate_authorization_for_primary_key_0",
        "operation": "read collection",
        "verb": "GET", "resource_type": "colls", "resource_link": "dbs/MyDatabase/colls/MyCollection",
        "date": DATE_1900, "key": RUST_KEY_0,
        "published_signature": "vrHmd02almbIg1e4htVWH+Eg/OhEHip3VTwFivZLH0A=",
    },
    {
        "name": "published-azure-sdk-for-rust-primary-key-1-truncated-key",
        "source": "azure-sdk-for-rust",
        "reference": "Azure/azure-sdk-for-rust sdk/cosmos/azure_data_cosmos/src/pipeline/authorization_policy.rs "
                     "@05b66535e31d generate_authorization_for_primary_key_1",
        "operation": "read database",
        "verb": "GET", "resource_type": "dbs", "resource_link": "dbs/ToDoList",
        "date": DATE_DOCS, "key": RUST_KEY_1,
        "published_signature": "KvBM8vONofkv3yKm/8zD9MEGlbu6jjHDJBp4E9c2ZZI=",
    },
]

# Vectors derived earlier with plain HMAC (protocols.md §C1.5, "derived here", not official).
# Checked against the generated vectors with the same inputs, to catch any drift.
DERIVED_EARLIER = {
    ("post", "dbs", ""): "CHjhNtQltyEuPdWLf2/f+hSkSlYg+7UuFlwMyv8L7mI=",
    ("post", "colls", DB): "HDurgEDeuTSmxwSAhu2CZpIMZfUFXFAUPj+dRKw4M40=",
    ("post", "docs", COLL): "MlPO83gCEkMzq3THhsZvfZcS2Kr9+G3Jwa1rBsaW4mU=",
    ("get", "docs", doc(EVENT_ID)): "VIHZFg2dW/qEoVTH999K8xwTrV8uHEtg3059jSJt5QA=",
    ("delete", "docs", doc(EVENT_ID)): "MqtsH+ozOZYxlnhF/xyyUP5yDGDyXHSGetQ/N95L9XU=",
}


class VectorError(Exception):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise VectorError(msg)


def check_date(date: str) -> None:
    parsed = email.utils.parsedate_to_datetime(date)
    check(parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, f"date not GMT: {date!r}")
    # formatdate cannot represent years before 1970 on every platform; check those by hand.
    weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][parsed.weekday()]
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][parsed.month - 1]
    canonical = f"{weekday}, {parsed.day:02d} {month} {parsed.year:04d} {parsed:%H:%M:%S} GMT"
    check(canonical == date, f"date {date!r} is not canonical RFC 1123 (expected {canonical!r})")


class _FakeConnectionPolicy:
    ResponsePayloadOnWriteDisabled = False


def fake_connection(master_key: str):
    """The attributes GetHeaders / _get_authorization_header read from a CosmosClientConnection."""
    return types.SimpleNamespace(
        master_key=master_key,
        resource_tokens=None,
        UseMultipleWriteLocations=False,
        client_id=None,
        connection_policy=_FakeConnectionPolicy(),
    )


def sdk_authorization(verb: str, resource_type: str, resource_link: str, date: str, key: str) -> str:
    """The Authorization header value exactly as azure-cosmos sends it, with x-ms-date pinned to `date`."""
    conn = fake_connection(key)
    # The SDK passes None as the resource id for POST/GET /dbs (CreateDatabase uses path "/dbs", id None).
    # For everything else it passes GetResourceIdOrFullNameFromLink(link), which trims slashes on a name-based link.
    resource_id = _base.GetResourceIdOrFullNameFromLink(resource_link) if resource_link else None
    check((resource_id or "") == resource_link, f"SDK derived a different signing link: {resource_id!r} vs {resource_link!r}")
    if resource_link:
        check(_base.IsNameBased(resource_link),
              f"link {resource_link!r} would be treated as RID-based (lower-cased) by the Python SDK; use a name-based link")
    path = "/" + (resource_link + "/" if resource_link else "") + resource_type
    with mock.patch.object(_base, "formatdate", lambda *a, **kw: date):
        headers = _base.GetHeaders(conn, {}, verb, path, resource_id, resource_type, "Read", {})
    check(headers[http_constants.HttpHeaders.XDate] == date, "x-ms-date was not pinned")
    authorization = headers[http_constants.HttpHeaders.Authorization]

    # Direct call of the auth entry point must give the same (unquoted) token.
    direct = auth._get_authorization_header(
        conn, verb, path, resource_id, _base.IsNameBased(resource_id), resource_type,
        {http_constants.HttpHeaders.XDate: date})
    check(urllib.parse.quote(direct, "-_.!~*'()") == authorization,
          "auth._get_authorization_header disagrees with GetHeaders")
    master_key_fn = getattr(auth, "__get_authorization_token_using_master_key")
    innermost = master_key_fn(verb, resource_link, resource_type, {http_constants.HttpHeaders.XDate: date}, key)
    check(innermost == direct, "auth.__get_authorization_token_using_master_key disagrees with _get_authorization_header")
    return authorization


def independent_string_to_sign(verb: str, resource_type: str, resource_link: str, date: str) -> str:
    return f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{date.lower()}\n\n"


def independent_signature(key: str, string_to_sign: str) -> str:
    mac = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


_UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")


def independent_header(signature: str) -> str:
    token = f"type=master&ver=1.0&sig={signature}".encode("ascii")
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in token)


def build_vector(name, source, operation, verb, resource_type, resource_link, date, key, extra=None):
    check_date(date)
    authorization = sdk_authorization(verb, resource_type, resource_link, date, key)
    token = urllib.parse.unquote(authorization)
    check(token.startswith("type=master&ver=1.0&sig="), f"{name}: unexpected token {token!r}")
    sdk_sig = token[len("type=master&ver=1.0&sig="):]

    string_to_sign = independent_string_to_sign(verb, resource_type, resource_link, date)
    sig = independent_signature(key, string_to_sign)
    check(sig == sdk_sig, f"{name}: SDK signature {sdk_sig!r} != independent HMAC {sig!r}")
    check(independent_header(sig) == authorization,
          f"{name}: SDK header {authorization!r} != independent encoding {independent_header(sig)!r}")

    vector = {
        "name": name,
        "source": source,
        "operation": operation,
        "verb": verb,
        "resource_type": resource_type,
        "resource_link": resource_link,
        "date": date,
        "key": key,
        "string_to_sign": string_to_sign,
        "signature": sig,
        "authorization": authorization,
    }
    if extra:
        vector.update(extra)
    return vector


def generate() -> dict:
    vectors = []
    names = set()
    for name, operation, verb, rtype, link, date, key in GENERATED:
        check(name not in names, f"duplicate name {name}")
        names.add(name)
        vectors.append(build_vector(name, "azure-cosmos-python-sdk", operation, verb, rtype, link, date, key))

    for pub in PUBLISHED:
        extra = {k: pub[k] for k in ("reference", "published_signature", "published_authorization") if k in pub}
        v = build_vector(pub["name"], pub["source"], pub["operation"], pub["verb"], pub["resource_type"],
                         pub["resource_link"], pub["date"], pub["key"], extra)
        check(v["signature"] == pub["published_signature"],
              f"{pub['name']}: computed {v['signature']!r} != published {pub['published_signature']!r}")
        if "published_authorization" in pub:
            check(urllib.parse.unquote(v["authorization"]) == urllib.parse.unquote(pub["published_authorization"]),
                  f"{pub['name']}: header does not decode to the published header")
            check(v["authorization"].lower() == pub["published_authorization"].lower(),
                  f"{pub['name']}: header differs from the published one beyond hex case")
        vectors.append(v)

    for (verb, rtype, link), expected in DERIVED_EARLIER.items():
        matches = [v for v in vectors
                   if v["verb"].lower() == verb and v["resource_type"] == rtype and v["resource_link"] == link
                   and v["key"] == EMULATOR_KEY and v["date"] == DATE_DOCS]
        check(len(matches) >= 1, f"no generated vector for earlier-derived {(verb, rtype, link)}")
        for m in matches:
            check(m["signature"] == expected, f"{m['name']}: {m['signature']!r} != earlier-derived {expected!r}")

    # Sanity: the mixed-case/lower-case pair must differ (case of the id is signed).
    sigs = {v["name"]: v["signature"] for v in vectors}
    check(sigs["read-document-id-mixed-case"] != sigs["read-document-id-lower-case"], "id case not signed")

    return {
        "generator": f"{SCRIPT_PATH} (oracle: azure-cosmos {azure.cosmos.__version__}, "
                     f"azure.cosmos._base.GetHeaders -> azure.cosmos.auth._get_authorization_header, "
                     f"x-ms-date pinned by patching azure.cosmos._base.formatdate)",
        "string_to_sign_format": "lower(verb)\\nlower(resource_type)\\nresource_link\\nlower(date)\\n\\n",
        "authorization_encoding": "urllib.parse.quote('type=master&ver=1.0&sig=' + signature, \"-_.!~*'()\") "
                                  "(uppercase hex; the service accepts either hex case)",
        "vectors": vectors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args()

    if azure.cosmos.__version__ != "4.17.1":
        print(f"warning: azure-cosmos {azure.cosmos.__version__} installed, vectors were pinned with 4.17.1",
              file=sys.stderr)
    try:
        data = generate()
    except VectorError as e:
        print(f"ABORT: {e}", file=sys.stderr)
        return 1

    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.reconfigure(encoding="utf-8", newline="\n")
        sys.stdout.write(text)
    print(f"{len(data['vectors'])} vectors OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
