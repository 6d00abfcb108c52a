"""The VS Code extension (editors/vscode/): its TextMate grammar run over every line of the zoo, by a
small TextMate tokenizer written here, against archspec's own lexer; the grammar's layer names
against `archspec layers --format json`; the manifest and the language configuration.

The tokenizer does what TextMate does with this grammar's kinds of rule: at each position the rule
whose match starts first wins (the earlier rule on a tie); a `begin`/`end` rule opens a scope
that its `end` (or its own patterns) continue; `include` reads the repository; captures add their
scope to their part of the match. The patterns are Python-`re` compatible by construction
(editors/vscode/grammar.py says so and this test holds it to that).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.parse import parser

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = json.loads((VSCODE / "syntaxes" / "arch.tmLanguage.json").read_text(encoding="utf-8"))
SPECS = sorted(ROOT.glob("specs/**/*.arch"))
ROOT_SCOPE = GRAMMAR["scopeName"]

KEYWORDS = {"block", "network", "def", "input", "output", "seq", "add", "mul", "concat", "modules", "repeat", "for",
            "in",
            "if", "else", "let", "assert", "import", "return", "and", "or", "not"}
CONSTANTS = {"true", "false", "none"}


# ---- a TextMate tokenizer for this grammar ----------------------------------------------------------

def _rules(patterns: list[dict]) -> list[dict]:
    """The patterns with every `include` replaced by what it names, in order."""
    out = []
    for p in patterns:
        if "include" in p:
            target = GRAMMAR["repository"][p["include"].removeprefix("#")]
            out += _rules(target["patterns"]) if "patterns" in target and "begin" not in target else [target]
        else:
            out += _rules(p["patterns"]) if "patterns" in p and "begin" not in p and "match" not in p else [p]
    return out


_COMPILED: dict[str, re.Pattern] = {}


def _regex(pattern: str) -> re.Pattern:
    if pattern not in _COMPILED:
        _COMPILED[pattern] = re.compile(pattern)
    return _COMPILED[pattern]


def _scope(scopes: list[list[str]], start: int, end: int, name: str | None) -> None:
    if name:
        for i in range(start, end):
            scopes[i].append(name)


def _captures(scopes: list[list[str]], m: re.Match, captures: dict | None) -> None:
    for group, c in (captures or {}).items():
        if m.start(int(group)) >= 0:
            _scope(scopes, m.start(int(group)), m.end(int(group)), c.get("name"))


def tokenize_line(line: str, stack: list[dict]) -> list[list[str]]:
    """Each character's scopes (the root scope left out); `stack` holds the open begin/end rules."""
    scopes: list[list[str]] = [[] for _ in line]
    pos = 0
    for _ in range(4 * len(line) + 4):  # every turn moves on or closes a rule; this bounds a runaway grammar
        top = stack[-1] if stack else None
        inner = _rules(top["patterns"]) if top else _rules(GRAMMAR["patterns"])
        candidates = ([("end", top)] if top else []) + [("rule", r) for r in inner]  # `end` wins a tie
        best = None
        for kind, rule in candidates:
            m = _regex(rule["end"] if kind == "end" else rule.get("match") or rule["begin"]).search(line, pos)
            if m is not None and (best is None or m.start() < best[2].start()):
                best = (kind, rule, m)
        _scope(scopes, pos, best[2].start() if best else len(line), top.get("name") if top else None)
        if best is None:
            break
        kind, rule, m = best
        if top is not None:
            _scope(scopes, m.start(), m.end(), top.get("name"))
        if kind == "end":
            stack.pop()
            _captures(scopes, m, rule.get("endCaptures"))
        elif "begin" in rule:
            stack.append(rule)
            _scope(scopes, m.start(), m.end(), rule.get("name"))
            _captures(scopes, m, rule.get("beginCaptures"))
        else:
            _scope(scopes, m.start(), m.end(), rule.get("name"))
            _captures(scopes, m, rule.get("captures"))
        if m.end() > pos:
            pos = m.end()
        elif kind == "rule" and "begin" not in rule:
            pos += 1  # an empty match: move on, as TextMate does
        if pos >= len(line) and not stack:
            break
    return scopes


def tokenize(text: str) -> list[list[list[str]]]:
    stack: list[dict] = []
    return [tokenize_line(line, stack) for line in text.split("\n")]


# ---- the tests --------------------------------------------------------------------------------------

def test_the_grammar_is_generated_from_the_registry():
    r = subprocess.run([sys.executable, str(VSCODE / "grammar.py"), "--check"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_layer_names_are_those_archspec_lists():
    r = subprocess.run([sys.executable, "-m", "archspec", "layers", "--format", "json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60, check=True)
    listed = {layer["name"] for layer in json.loads(r.stdout)}
    pattern = GRAMMAR["repository"]["layer"]["match"]
    alternation = re.search(r"\\b\(\?:(.*?)\)\\b", pattern).group(1)
    assert set(alternation.split("|")) == listed


def test_the_patterns_compile_in_python():
    rules = _rules(GRAMMAR["patterns"])
    for rule in rules:
        rules += [r for r in _rules(rule.get("patterns", [])) if r not in rules]
    for rule in rules:
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])
    assert len(rules) > 20


@pytest.mark.parametrize("spec", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_every_token_of_the_zoo_gets_its_scope(spec: Path):
    text = spec.read_text(encoding="utf-8")
    lines = text.split("\n")
    scopes = tokenize(text)
    for n, (line, line_scopes) in enumerate(zip(lines, scopes), start=1):
        for col, (ch, s) in enumerate(zip(line, line_scopes), start=1):
            if not ch.isspace():
                assert s, f"{spec.name}:{n}:{col}: `{ch}` has no scope but {ROOT_SCOPE}"
                assert "invalid.illegal.arch" not in s, f"{spec.name}:{n}:{col}: `{ch}` is marked invalid"
    checked = _against_the_lexer(text, scopes, spec.name)
    assert checked["keyword"] and checked["number"] and checked["comment"]  # each spec has all three


def _against_the_lexer(text: str, scopes: list[list[list[str]]], name: str) -> dict[str, int]:
    """Every token archspec's own lexer finds of the kinds the grammar must colour, at its first
    character: keywords, constants, numbers, comments, strings, and layer names where they name a
    layer (not a label or a parameter being bound)."""
    tokens = [t for t in parser().lex(text, dont_ignore=True) if t.type not in ("WS", "COMMENT")]
    comments = [t for t in parser().lex(text, dont_ignore=True) if t.type == "COMMENT"]
    counts = {"keyword": 0, "constant": 0, "number": 0, "comment": 0, "string": 0, "layer": 0, "label": 0,
              "argument": 0, "type": 0, "reference": 0}
    from archspec.layers import LAYERS

    depth = 0  # parentheses open
    for i, tok in enumerate([*tokens, *comments]):
        value = str(tok)
        after = _after_label_index(tokens, i + 1)
        before = str(tokens[i - 1]) if 0 < i < len(tokens) else ""
        depth += (value == "(") - (value == ")") if tok.type != "COMMENT" else 0
        got = scopes[tok.line - 1][tok.column - 1]
        word = tok.type == "NAME" or value in KEYWORDS
        if tok.type == "COMMENT":
            kind, want = "comment", ("comment.line.number-sign.arch",)
        elif tok.type == "STRING":
            kind, want = "string", ("string.quoted.double.arch",)
        elif tok.type == "NAME" and before == ":":
            kind, want = "type", ("support.type.arch",)  # `planes: int = 64`
        elif before == "@" and depth == 0 and after == "=":
            kind, want = "reference", ("variable.other.reference.arch",)  # a tensor name: `@p{i} = ...`
        elif word and after == "=" and depth == 0 and before != "let":
            kind, want = "label", ("entity.name.tag.label.arch",)  # even a keyword: `block = seq {...}`
        elif word and after == "=" and depth > 0:
            kind, want = "argument", ("variable.parameter.arch",)
        elif before == "@":
            kind, want = "reference", ("variable.other.reference.arch",)  # `@x`, `@input`
        elif tok.type != "NAME" and value in KEYWORDS:
            kind, want = "keyword", ("storage.type.arch", "keyword.control.arch", "keyword.other.arch",
                                     "keyword.operator.logical.arch")
        elif tok.type != "NAME" and value in CONSTANTS:
            kind, want = "constant", ("constant.language.arch",)
        elif tok.type == "NUMBER":
            kind, want = "number", ("constant.numeric.arch",)
        elif tok.type == "NAME" and value in LAYERS and after not in (":", "{"):
            kind, want = "layer", ("support.function.layer.arch",)
        else:
            continue
        assert any(w in got for w in want), f"{name}:{tok.line}:{tok.column} `{value}` ({kind}): {got}"
        counts[kind] += 1
    return counts


def _after_label_index(tokens: list, i: int) -> str:
    """The token at `i`, or past a label's `{expr}` there (`block{s + 1} = ...`) the one after it."""
    if i >= len(tokens):
        return ""
    if str(tokens[i]) == "{":
        depth = 0
        for j in range(i, len(tokens)):
            depth += (str(tokens[j]) == "{") - (str(tokens[j]) == "}")
            if depth == 0:
                return str(tokens[j + 1]) if j + 1 < len(tokens) and str(tokens[j + 1]) == "=" else "{"
    return str(tokens[i])


def test_the_tokenizer_itself():
    """The tokenizer on lines whose scopes are known, so a broken tokenizer cannot pass the zoo."""
    line = 'conv1 = conv2d(64, kernel=3)  # "not a string" 12'
    s = tokenize_line(line, [])
    at = {word: s[line.index(word)] for word in ("conv1", "conv2d", "64", "kernel", "3)", "#")}
    assert "entity.name.tag.label.arch" in at["conv1"]
    assert at["conv2d"] == ["support.function.layer.arch"]
    assert at["64"] == ["constant.numeric.arch"] and at["3)"] == ["constant.numeric.arch"]
    assert at["kernel"] == ["variable.parameter.arch"]
    assert all(x == ["comment.line.number-sign.arch"] for x in s[line.index("#"):])
    line = 'x = @p{i}  "a\\"b{i}" + 1e-3'
    s = tokenize_line(line, [])
    assert s[line.index("@")] == ["variable.other.reference.arch"]
    quoted = line.index('"a')
    assert all("string.quoted.double.arch" in x for x in s[quoted: quoted + 8])
    assert "constant.character.escape.arch" in s[quoted + 2]
    assert "constant.other.placeholder.arch" in s[line.index("{i}\"")]
    assert s[line.index("1e-3")] == ["constant.numeric.arch"] and s[-1] == ["constant.numeric.arch"]
    assert s[line.index("+")] == ["keyword.operator.arch"]
    line = "block b(planes: int, dropout: float = 0.5) { relu = relu  dropout(dropout) }"
    s = tokenize_line(line, [])
    assert s[0] == ["storage.type.arch"] and s[line.index("b(")] == ["entity.name.function.arch"]
    assert s[line.index("int")][-1] == "support.type.arch"
    assert "support.function.layer.arch" not in s[line.index("dropout:")]
    assert s[line.index("relu =")] == ["entity.name.tag.label.arch"]
    assert s[line.index("relu  ")] == ["support.function.layer.arch"]
    assert s[line.index("dropout(")] == ["support.function.layer.arch"]
    stack: list[dict] = []
    s = tokenize_line('"open', stack)  # a string left open ends with its line, as the language's do
    assert stack == [] and all(x == ["string.quoted.double.arch"] for x in s[1:])


def test_the_manifest_and_language_configuration():
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "arch" and language["extensions"] == [".arch"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["scopeName"] == ROOT_SCOPE and (VSCODE / grammar["path"]).is_file()
    assert (VSCODE / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    command = manifest["contributes"]["configuration"]["properties"]["archspec.server.command"]["default"]
    assert command == ["archspec", "lsp"]
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"] == {"lineComment": "#"}
    assert sorted(map(tuple, config["brackets"])) == [("(", ")"), ("[", "]"), ("{", "}")]
    assert {p["open"] for p in config["autoClosingPairs"]} == {"(", "[", "{", '"'}
    client = (VSCODE / manifest["main"]).read_text(encoding="utf-8")
    assert "archspec.server.command" in client or "server.command" in client
