"""A small client that drives `archspec lsp` over stdio with real JSON-RPC messages: for the tests,
the benchmark, and anyone scripting the server.

Messages are framed as the protocol frames them (`Content-Length: N` and a blank line before each
JSON body). A thread reads the server's output and stamps each message with the time it arrived,
so that a benchmark measures the server's answer, not when the test got round to reading it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


class Client:
    def __init__(self, command: list[str] | None = None, cwd: str | None = None, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(command or [sys.executable, "-m", "archspec", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
        self._ids = 0
        self._inbox: queue.Queue = queue.Queue()
        self.seen: list[tuple[float, dict]] = []  # notifications received, with their arrival time
        threading.Thread(target=self._read, daemon=True).start()

    # -- the wire ------------------------------------------------------------------------------
    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                header = out.readline()
                if not header:
                    self._inbox.put((time.perf_counter(), None))
                    return
                header = header.strip()
                if not header:
                    break
                name, _, value = header.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = json.loads(out.read(length))
            self._inbox.put((time.perf_counter(), body))

    def send(self, message: dict) -> float:
        """Write one message; the time just before it was written (so that an answer, stamped by the
        reader thread, can never seem to come before its question)."""
        data = json.dumps(message).encode("utf-8")
        data = b"Content-Length: %d\r\n\r\n" % len(data) + data
        sent = time.perf_counter()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        return sent

    def notify(self, method: str, params: Any) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        """Send a request and return its result (a server error raises RuntimeError)."""
        return self.request_timed(method, params, timeout)[0]

    def request_timed(self, method: str, params: Any, timeout: float = 30) -> tuple[Any, float]:
        """The result and the seconds from sending the request to its answer arriving."""
        self._ids += 1
        rid = self._ids
        sent = self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        at, msg = self._next(lambda m: m.get("id") == rid and "method" not in m, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result"), at - sent

    def wait(self, predicate: Callable[[dict], bool], timeout: float = 30) -> tuple[float, dict]:
        """The first notification (already received, or still to come) that satisfies `predicate`."""
        for i, (at, msg) in enumerate(self.seen):
            if predicate(msg):
                del self.seen[i]
                return at, msg
        return self._next(lambda m: "method" in m and "id" not in m and predicate(m), timeout)

    def _next(self, want: Callable[[dict], bool], timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, msg = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("no answer from the language server") from None
            if msg is None:
                raise EOFError("the language server exited: " + self.proc.stderr.read().decode(errors="replace"))
            if want(msg):
                return at, msg
            if "method" in msg and "id" in msg:  # a request from the server: answer it
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            elif "method" in msg:
                self.seen.append((at, msg))

    # -- the conversation ------------------------------------------------------------------------
    def initialize(self, root: str, options: dict | None = None) -> dict:
        result = self.request("initialize", {"processId": None, "rootUri": Path(root).resolve().as_uri(),
                                             "capabilities": {}, "initializationOptions": options or {}})
        self.notify("initialized", {})
        return result

    def open(self, path: str, text: str | None = None, version: int = 1) -> str:
        uri = Path(path).resolve().as_uri()
        text = Path(path).read_text(encoding="utf-8") if text is None else text
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "arch", "version": version,
                                                              "text": text}})
        return uri

    def change(self, uri: str, version: int, text: str, start: tuple[int, int] | None = None,
               end: tuple[int, int] | None = None) -> float:
        """Replace the range start..end ((line, character) from 0), or the whole text without one."""
        change: dict[str, Any] = {"text": text}
        if start is not None:
            end = end or start
            change["range"] = {"start": {"line": start[0], "character": start[1]},
                               "end": {"line": end[0], "character": end[1]}}
        return self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                      "contentChanges": [change]})

    def diagnostics(self, uri: str, version: int | None = None, timeout: float = 30) -> tuple[float, list[dict]]:
        """The next diagnostics published for the document (at `version`, when given)."""
        at, msg = self.wait(lambda m: m["method"] == "textDocument/publishDiagnostics"
                            and m["params"]["uri"] == uri
                            and (version is None or m["params"].get("version") == version), timeout)
        return at, msg["params"]["diagnostics"]

    def close(self, timeout: float = 10) -> int:
        try:
            self.request("shutdown", None, timeout)
            self.notify("exit", None)
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                stream.close()
