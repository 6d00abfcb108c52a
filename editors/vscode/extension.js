// The client: starts `archspec lsp` (the setting archspec.server.command) for .arch files.
// Everything the editor shows beyond colours (diagnostics, hover, inlay hints, completion, go to
// definition, the outline, formatting) comes from that server.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverOptions(config) {
  const [command, ...args] = config.get("server.command", ["archspec", "lsp"]);
  // TransportKind.stdio adds `--stdio`, which `archspec lsp` accepts.
  return { command, args, transport: TransportKind.stdio };
}

function clientOptions(config) {
  return {
    documentSelector: [
      { scheme: "file", language: "arch" },
      { scheme: "untitled", language: "arch" },
    ],
    initializationOptions: {
      inlayHints: config.get("inlayHints", true),
      allowImportOutside: config.get("allowImportOutside", false),
    },
  };
}

async function start() {
  const config = vscode.workspace.getConfiguration("archspec");
  client = new LanguageClient("archspec", "archspec", serverOptions(config), clientOptions(config));
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `archspec: could not start the language server (${config.get("server.command").join(" ")}): ${err.message}. ` +
      "Install it with pip install 'archspec[lsp]', or set archspec.server.command.");
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("archspec.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("archspec")) {
        await vscode.commands.executeCommand("archspec.restartServer");
      }
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
