#!/usr/bin/env sh
# Package the extension as archspec-VERSION.vsix: the grammar regenerated from archspec's layer
# registry, the client's one dependency (vscode-languageclient) installed from npm, then vsce.
# Needs Python with archspec installed, and Node.js with npm (Debian: apt-get install nodejs npm).
set -eu
cd "$(dirname "$0")"
python3 grammar.py
npm ci --no-audit --no-fund --omit=dev
version=$(node -p 'require("./package.json").version')
npx --yes @vscode/vsce@3 package --skip-license --allow-missing-repository \
    -o "archspec-$version.vsix"
