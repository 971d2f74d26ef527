"""CITATION.cff: valid Citation File Format 1.2.0, and in step with the package.

The official CFF 1.2.0 JSON schema is not shipped by any package geoconv depends on, and
tests never use the network, so :data:`CFF_SCHEMA_SUBSET` below is written here from the
format's specification. It checks the schema's required keys and the types of the keys,
and it rejects keys the format does not define (so a typo such as ``reference:`` fails).
It does NOT reproduce the whole schema: the SPDX license list, ISO country codes, ORCID
and Software Heritage identifier patterns, the ``identifiers`` and ``preferred-citation``
sub-schemas and most per-field length limits are left out (``license`` is checked
against the one value we use instead).
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import geoconv

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
CITATION = ROOT / "CITATION.cff"

_STRING = {"type": "string", "minLength": 1}
_INTEGER = {"type": "integer"}
_STRING_OR_NUMBER = {"anyOf": [_STRING, {"type": "number"}]}
_DATE = {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$"}
_URL = {"type": "string", "pattern": r"^(https|http|ftp|sftp)://.+"}
_DOI = {"type": "string", "pattern": r"^10\.\d{4,9}(\.\d+)?/[A-Za-z0-9:/_;\-\.\(\)\[\]\\]+$"}
_STRINGS = {"type": "array", "items": _STRING, "minItems": 1, "uniqueItems": True}
_ANY: dict[str, Any] = {}


def _people() -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": {"anyOf": [{"$ref": "#/definitions/person"}, {"$ref": "#/definitions/entity"}]},
    }


_PERSON_KEYS = [
    "address",
    "affiliation",
    "alias",
    "city",
    "country",
    "email",
    "family-names",
    "fax",
    "given-names",
    "name-particle",
    "name-suffix",
    "orcid",
    "post-code",
    "region",
    "tel",
    "website",
]
_ENTITY_KEYS = [
    "address",
    "alias",
    "city",
    "country",
    "date-end",
    "date-start",
    "email",
    "fax",
    "location",
    "name",
    "orcid",
    "post-code",
    "region",
    "tel",
    "website",
]
_REFERENCE_TYPES = [
    "art",
    "article",
    "audiovisual",
    "bill",
    "blog",
    "book",
    "catalogue",
    "conference-paper",
    "conference",
    "data",
    "database",
    "dictionary",
    "edited-work",
    "encyclopedia",
    "film-broadcast",
    "generic",
    "government-document",
    "grant",
    "hearing",
    "historical-work",
    "legal-case",
    "legal-rule",
    "magazine-article",
    "manual",
    "map",
    "multimedia",
    "music",
    "newspaper-article",
    "pamphlet",
    "patent",
    "personal-communication",
    "proceedings",
    "report",
    "serial",
    "slides",
    "software-code",
    "software-container",
    "software-executable",
    "software-virtual-machine",
    "software",
    "sound-recording",
    "standard",
    "statute",
    "thesis",
    "unpublished",
    "video",
    "website",
]
# Every key a reference may have; the ones geoconv uses get their real type, the rest any type.
_REFERENCE_PROPERTIES: dict[str, Any] = dict.fromkeys(
    [
        "abbreviation",
        "abstract",
        "collection-doi",
        "collection-type",
        "commit",
        "conference",
        "contact",
        "copyright",
        "data-type",
        "database",
        "database-provider",
        "date-accessed",
        "date-downloaded",
        "department",
        "edition",
        "editors",
        "editors-series",
        "entry",
        "filename",
        "format",
        "identifiers",
        "institution",
        "isbn",
        "issn",
        "issue-date",
        "issue-title",
        "keywords",
        "languages",
        "license",
        "license-url",
        "loc-end",
        "loc-start",
        "location",
        "medium",
        "month",
        "nihmsid",
        "number",
        "number-volumes",
        "pages",
        "patent-states",
        "pmcid",
        "publisher",
        "recipients",
        "repository",
        "repository-artifact",
        "scope",
        "section",
        "senders",
        "term",
        "thesis-type",
        "translators",
        "version",
        "volume-title",
        "year-original",
    ],
    _ANY,
)
_REFERENCE_PROPERTIES.update(
    {
        "authors": _people(),
        "title": _STRING,
        "type": {"type": "string", "enum": _REFERENCE_TYPES},
        "year": _INTEGER,
        "volume": _INTEGER,
        "start": _INTEGER,
        "end": _INTEGER,
        "issue": _STRING_OR_NUMBER,
        "journal": _STRING,
        "collection-title": _STRING,
        "notes": _STRING,
        "doi": _DOI,
        "url": _URL,
        "repository-code": _URL,
        "date-published": _DATE,
        "date-released": _DATE,
        "status": {
            "type": "string",
            "enum": ["abstract", "advance-online", "in-preparation", "in-press", "preprint", "submitted"],
        },
    }
)

CFF_SCHEMA_SUBSET: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "required": ["authors", "cff-version", "message", "title"],
    "additionalProperties": False,
    "properties": {
        "abstract": _STRING,
        "authors": _people(),
        "cff-version": {"type": "string", "pattern": r"^1\.2\.0$"},
        "commit": _STRING,
        "contact": _people(),
        "date-released": _DATE,
        "doi": _DOI,
        "identifiers": {"type": "array", "minItems": 1},
        "keywords": _STRINGS,
        "license": {"anyOf": [_STRING, _STRINGS]},
        "license-url": _URL,
        "message": _STRING,
        "preferred-citation": {"$ref": "#/definitions/reference"},
        "references": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"$ref": "#/definitions/reference"},
        },
        "repository": _URL,
        "repository-artifact": _URL,
        "repository-code": _URL,
        "title": _STRING,
        "type": {"type": "string", "enum": ["dataset", "software"]},
        "url": _URL,
        "version": _STRING_OR_NUMBER,
    },
    "definitions": {
        "person": {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: _STRING for key in _PERSON_KEYS},
        },
        "entity": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {key: _STRING for key in _ENTITY_KEYS},
        },
        "reference": {
            "type": "object",
            "required": ["authors", "title", "type"],
            "additionalProperties": False,
            "properties": _REFERENCE_PROPERTIES,
        },
    },
}


def _dates_to_strings(value: Any) -> Any:
    # YAML reads an unquoted 2019-03-30 as a date; the CFF schema expects the string form.
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _dates_to_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_to_strings(item) for item in value]
    return value


def _load(text: str) -> dict[str, Any]:
    return _dates_to_strings(yaml.safe_load(text))


@pytest.fixture(scope="module")
def citation() -> dict[str, Any]:
    return _load(CITATION.read_text(encoding="utf-8"))


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(CFF_SCHEMA_SUBSET)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10: no tomllib; the [project] version line is simple enough
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
        assert match, "no version in pyproject.toml"
        return match.group(1)
    return tomllib.loads(text)["project"]["version"]


def test_the_schema_subset_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(CFF_SCHEMA_SUBSET)


def test_citation_file_is_valid_cff_1_2_0(citation: dict[str, Any]) -> None:
    assert _errors(citation) == []
    assert citation["cff-version"] == "1.2.0"
    assert citation["license"] == "MIT"


@pytest.mark.parametrize(
    ("mutate", "culprit"),
    [
        (lambda d: d.pop("authors"), "'authors' is a required property"),
        (lambda d: d.pop("message"), "'message' is a required property"),
        (lambda d: d.update({"cff-version": "1.1.0"}), "does not match"),
        (lambda d: d.update({"date-released": "2026-13-01"}), "does not match"),
        (lambda d: d.update({"reference": d["references"]}), "Additional properties"),
        (lambda d: d["references"][0].pop("title"), "'title' is a required property"),
        (lambda d: d["references"][0].pop("type"), "'type' is a required property"),
        (lambda d: d["references"][0].update({"type": "paper"}), "is not one of"),
        (lambda d: d["references"][0].update({"year": "2019"}), "is not of type 'integer'"),
        (lambda d: d["references"][0].update({"authors": [{"surname": "Zonca"}]}), "is not valid under any"),
        (lambda d: d["references"][0].update({"doi": "https://doi.org/10.1086/427976"}), "does not match"),
    ],
)
def test_the_schema_subset_rejects_broken_files(mutate: Any, culprit: str) -> None:
    document = _load(CITATION.read_text(encoding="utf-8"))
    mutate(document)
    errors = _errors(document)
    assert any(culprit in error for error in errors), errors


def test_version_matches_the_package(citation: dict[str, Any]) -> None:
    assert str(citation["version"]) == geoconv.__version__ == _pyproject_version()


def test_every_reference_has_authors_and_a_year(citation: dict[str, Any]) -> None:
    for reference in citation["references"]:
        title = reference["title"]
        assert reference.get("authors"), f"reference {title!r} has no authors"
        for author in reference["authors"]:
            assert author.get("family-names") or author.get("name"), f"an author of {title!r} has no name"
        assert reference.get("year") or reference.get("date-published") or reference.get("date-released"), (
            f"reference {title!r} has neither a year nor a date"
        )


def test_references_are_distinct(citation: dict[str, Any]) -> None:
    titles = [reference["title"].lower() for reference in citation["references"]]
    dois = [reference["doi"].lower() for reference in citation["references"] if "doi" in reference]
    assert len(set(titles)) == len(titles)
    assert len(set(dois)) == len(dois)


@pytest.mark.parametrize(
    "fragment",
    [
        "healpy",
        "HEALPix: A Framework",
        "e3nn",
        "Hydra",
        "PyTorch: An Imperative Style",
        "Gated Convolution",
        "Shift-Invariant Again",
        "Truly Shift-Invariant",
        "Computing Receptive Fields",
        "Effective Receptive Field",
        "Spherical CNNs",
        "Cube Padding",
        "HEALPix sphere",
        "DeepSphere",
        "DISCO",
    ],
)
def test_the_works_geoconv_builds_on_are_cited(citation: dict[str, Any], fragment: str) -> None:
    titles = [reference["title"] for reference in citation["references"]]
    assert any(fragment in title for title in titles), f"no reference whose title contains {fragment!r}"
