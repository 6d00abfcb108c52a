"""`archspec check --format sarif`: a SARIF 2.1.0 log that code scanning takes.

No network access for the schema: the structural rules of the SARIF 2.1.0 schema that apply to what
archspec writes are spelled out here (required properties, enums, minimums, and the properties each
object may have: the schema closes its objects with `additionalProperties: false`). Every case of the
bad-input corpus is checked in SARIF and compared with the same run's JSON report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.errors import Diagnostic, Span, render_sarif

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted((ROOT / "tests" / "bad").glob("*.arch"))

# Per object kind of the SARIF 2.1.0 schema: (required properties, the properties it allows).
SCHEMA = {
    "sarifLog": ({"version", "runs"}, {"$schema", "version", "runs", "inlineExternalProperties", "properties"}),
    "run": ({"tool"}, {"tool", "invocations", "conversion", "language", "versionControlProvenance",
                       "originalUriBaseIds", "artifacts", "logicalLocations", "graphs", "results",
                       "automationDetails", "runAggregates", "baselineGuid", "redactionReleases", "defaultEncoding",
                       "defaultSourceLanguage", "newlineSequences", "columnKind", "externalPropertyFileReferences",
                       "threadFlowLocations", "taxonomies", "addresses", "translations", "policies", "webRequests",
                       "webResponses", "specialLocations", "properties"}),
    "tool": ({"driver"}, {"driver", "extensions", "properties"}),
    "toolComponent": ({"name"}, {"guid", "name", "organization", "product", "productSuite", "shortDescription",
                                 "fullDescription", "fullName", "version", "semanticVersion", "dottedQuadFileVersion",
                                 "releaseDateUtc", "downloadUri", "informationUri", "globalMessageStrings",
                                 "notifications", "rules", "taxa", "locations", "language", "contents",
                                 "isComprehensive", "localizedDataSemanticVersion",
                                 "minimumRequiredLocalizedDataSemanticVersion", "associatedComponent",
                                 "translationMetadata", "supportedTaxonomies", "properties"}),
    "reportingDescriptor": ({"id"}, {"id", "deprecatedIds", "guid", "deprecatedGuids", "name", "deprecatedNames",
                                     "shortDescription", "fullDescription", "messageStrings", "defaultConfiguration",
                                     "helpUri", "help", "relationships", "properties"}),
    "multiformatMessageString": ({"text"}, {"text", "markdown", "properties"}),
    "reportingConfiguration": (set(), {"enabled", "level", "rank", "parameters", "properties"}),
    "result": ({"message"}, {"guid", "correlationGuid", "ruleId", "ruleIndex", "rule", "taxa", "kind", "level",
                             "message", "analysisTarget", "locations", "webRequest", "webResponse", "fingerprints",
                             "partialFingerprints", "codeFlows", "graphs", "graphTraversals", "stacks",
                             "relatedLocations", "suppressions", "baselineState", "rank", "attachments",
                             "hostedViewerUri", "workItemUris", "provenance", "fixes", "occurrenceCount",
                             "properties"}),
    "message": (set(), {"text", "markdown", "id", "arguments", "properties"}),  # and text or id
    "location": (set(), {"id", "physicalLocation", "logicalLocations", "message", "annotations", "relationships",
                         "properties"}),
    "physicalLocation": (set(), {"address", "artifactLocation", "region", "contextRegion", "properties"}),
    "artifactLocation": (set(), {"uri", "uriBaseId", "index", "description", "properties"}),
    "region": (set(), {"startLine", "startColumn", "endLine", "endColumn", "charOffset", "charLength", "byteOffset",
                       "byteLength", "snippet", "message", "sourceLanguage", "properties"}),
}
LEVELS = {"none", "note", "warning", "error"}
URI_REFERENCE = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")  # RFC 3986 characters only


def _obj(kind: str, value: dict) -> None:
    required, allowed = SCHEMA[kind]
    assert isinstance(value, dict), (kind, value)
    assert required <= set(value), f"{kind} lacks {required - set(value)}"
    assert set(value) <= allowed, f"{kind} may not have {set(value) - allowed}"


def validate(log: dict) -> None:
    """The SARIF 2.1.0 schema's rules for everything archspec writes; raises AssertionError."""
    _obj("sarifLog", log)
    assert log["version"] == "2.1.0" and isinstance(log["runs"], list)
    for run in log["runs"]:
        _obj("run", run)
        _obj("tool", run["tool"])
        driver = run["tool"]["driver"]
        _obj("toolComponent", driver)
        assert run.get("columnKind", "unicodeCodePoints") in ("utf16CodeUnits", "unicodeCodePoints")
        rules = driver.get("rules", [])
        ids = [r["id"] for r in rules]
        assert len(ids) == len(set(ids)), "rule ids must be unique"
        for rule in rules:
            _obj("reportingDescriptor", rule)
            for key in ("shortDescription", "fullDescription", "help"):
                if key in rule:
                    _obj("multiformatMessageString", rule[key])
            if "defaultConfiguration" in rule:
                _obj("reportingConfiguration", rule["defaultConfiguration"])
                assert rule["defaultConfiguration"].get("level", "warning") in LEVELS
        for result in run.get("results", []):
            _obj("result", result)
            _obj("message", result["message"])
            assert "text" in result["message"] or "id" in result["message"]
            assert result.get("level", "warning") in LEVELS
            if "ruleIndex" in result:
                assert 0 <= result["ruleIndex"] < len(rules) and rules[result["ruleIndex"]]["id"] == result["ruleId"]
            for loc in result.get("locations", []):
                _obj("location", loc)
                phys = loc["physicalLocation"]
                _obj("physicalLocation", phys)
                assert "artifactLocation" in phys or "address" in phys
                _obj("artifactLocation", phys["artifactLocation"])
                assert URI_REFERENCE.match(phys["artifactLocation"]["uri"]), phys["artifactLocation"]["uri"]
                if "region" in phys:
                    r = phys["region"]
                    _obj("region", r)
                    assert r["startLine"] >= 1 and r.get("startColumn", 1) >= 1
                    assert r.get("endLine", r["startLine"]) >= r["startLine"] and r.get("endColumn", 1) >= 1


def _check(capsys, *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_the_bad_corpus_in_sarif_matches_the_json_report(capsys, case):
    rel = str(case.relative_to(ROOT))
    code, out = _check(capsys, "--format", "sarif", rel)
    log = json.loads(out)
    validate(log)
    code_json, out_json = _check(capsys, "--format", "json", rel)
    report = json.loads(out_json)
    assert code == code_json
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "archspec"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == sorted({d["code"] for d in report["diagnostics"]})
    got = [(r["ruleId"], r["level"], *_place(r)) for r in run["results"]]
    want = [(d["code"], d["severity"], d["file"], d["line"], d["column"], d["end_line"], d["end_column"])
            for d in report["diagnostics"] if not d["file"].startswith("<")]
    assert got == [g for g in got if g[2] is not None] and got == want
    for r, d in zip(run["results"], (d for d in report["diagnostics"] if not d["file"].startswith("<"))):
        assert r["message"]["text"].split("\n") == [d["message"], *d["notes"]]


def _place(result: dict) -> tuple:
    (loc,) = result["locations"]
    phys = loc["physicalLocation"]
    region = phys.get("region", {})
    return (phys["artifactLocation"]["uri"], region.get("startLine"), region.get("startColumn"),
            region.get("endLine"), region.get("endColumn"))


def test_a_clean_run_is_an_empty_log(capsys):
    code, out = _check(capsys, "--format", "sarif", "specs/lenet.arch")
    log = json.loads(out)
    validate(log)
    assert code == 0 and log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_rules_are_titled_from_the_docs_and_warnings_stay_warnings(capsys):
    _, out = _check(capsys, "--format", "sarif", "tests/bad/linear_on_4d.arch")
    (rule,) = json.loads(out)["runs"][0]["tool"]["driver"]["rules"]
    assert rule["id"] == "W601" and rule["shortDescription"]["text"] == "W601: linear on a 4-D tensor"
    assert rule["defaultConfiguration"]["level"] == "warning"
    _, out = _check(capsys, "--format", "sarif", "--werror", "tests/bad/linear_on_4d.arch")
    run = json.loads(out)["runs"][0]
    assert run["results"][0]["level"] == "error" and run["tool"]["driver"]["rules"][0]["defaultConfiguration"] == {
        "level": "error"}


def test_file_names_become_uri_references():
    diags = [Diagnostic("E101", "m", Span("my specs/a#1.arch", 2, 3, 2, 4)),
             Diagnostic("E001", "m", Span("/abs/x y.arch")), Diagnostic("E203", "m", Span("<--set k>", 1, 1, 1, 2))]
    log = render_sarif(diags, "9")
    validate(log)
    results = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    where = {code: r["locations"][0]["physicalLocation"] for code, r in results.items() if "locations" in r}
    assert where["E101"] == {"artifactLocation": {"uri": "my%20specs/a%231.arch"},
                             "region": {"startLine": 2, "startColumn": 3, "endLine": 2, "endColumn": 4}}
    assert where["E001"] == {"artifactLocation": {"uri": "file:///abs/x%20y.arch"}}  # a whole-file problem: no region
    assert "locations" not in results["E203"]  # no file to point at


def test_the_validator_catches_what_the_schema_forbids():
    good = render_sarif([Diagnostic("E101", "m", Span("a.arch", 1, 1, 1, 2))], "9")
    validate(good)
    broken = json.loads(json.dumps(good))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(AssertionError):
        validate(broken)
    broken = json.loads(json.dumps(good))
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["line"] = 1
    with pytest.raises(AssertionError):
        validate(broken)
    broken = json.loads(json.dumps(good))
    del broken["runs"][0]["tool"]["driver"]["name"]
    with pytest.raises(AssertionError):
        validate(broken)
