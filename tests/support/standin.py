"""A stand-in model server on 127.0.0.1 speaking the OpenAI and Gemini wire protocols.

It serves ``POST /v1/chat/completions`` (OpenAI), and for Gemini the Files API resumable
upload (``POST /upload/v1beta/files`` then the session URL), ``GET /v1beta/files/<id>`` and
``POST /v1beta/models/<model>:generateContent``. Answers are generated from the JSON schema
each request carries, so any answer model of the workflow gets a valid, deterministic
answer; QA items and the verification probes are answered by a stand-in model
(:mod:`support.model`: good by default, ``flawed=True`` for one with real models' defects);
``labels`` maps a video's SHA-256 to the classification to give it. Every request is
recorded for assertions (calls, uploads, media bytes received).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import select
import socket
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support.model import Model


def fake_from_schema(schema: dict, name: str = "", salt: str = "", root: dict | None = None) -> object:
    """A deterministic instance of a JSON schema (the subset the workflow sends; ``$ref``
    resolved against the root's ``$defs``)."""
    root = schema if root is None else root
    if "$ref" in schema:
        return fake_from_schema(root["$defs"][schema["$ref"].split("/")[-1]], name, salt, root)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return fake_from_schema(schema["anyOf"][0], name, salt, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        return {k: fake_from_schema(v, k, salt, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        n = max(schema.get("minItems", 1), min(2, schema.get("maxItems", 2)))
        return [fake_from_schema(schema.get("items", {}), f"{name}{i}", salt + str(i), root) for i in range(n)]
    if kind == "boolean":
        return True
    if kind in ("number", "integer"):
        return {"start_sec": 0.5, "end_sec": 1.5, "anomaly_time_sec": 1.0}.get(name.rstrip("0123456789"), 1)
    return f"{name} {salt} stand-in text".strip()


#: Model names the stand-in serves (those the tests and the benchmark use).
SERVED = ("gemini-3.1-flash-lite-preview", "stand-in-vl", "vl", "m", "bench")

#: Faults injected in turn when ``fault_every`` is set: rate limit, server error, a stall
#: past the client's timeout, malformed JSON, JSON that violates the schema.
FAULT_CYCLE = ("429", "500", "timeout", "badjson", "schema")


#: Tokens the stand-in bills per video frame (Gemini 3's rate at low/medium resolution; 280
#: at high) and per second of audio, at 1 frame/s unless the request sets ``fps``.
FRAME_TOKENS = {"MEDIA_RESOLUTION_HIGH": 280}
FRAME_TOKENS_DEFAULT = 70
AUDIO_TOKENS_PER_S = 32


def probe_bytes(data: bytes) -> tuple[float, bool]:
    """``(duration s, has audio)`` of a video given as bytes (ffprobe on a temporary file)."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as fh:
        fh.write(data)
        fh.flush()
        times: list[float] = []
        audio = False
        for entries in ("format=duration:stream=codec_type,duration", "packet=pts_time"):  # packets: no duration
            out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", fh.name],
                                 capture_output=True, text=True, check=True).stdout
            info = json.loads(out)
            times = [float(x[k]) for x in [info.get("format", {}), *info.get("streams", []), *info.get("packets", [])]
                     for k in ("duration", "pts_time") if x.get(k) not in (None, "N/A")]
            if "streams" in info:
                audio = any(st.get("codec_type") == "audio" for st in info["streams"])
            if times:
                break
    return max(times, default=0.0), audio


class StandIn:
    """The server; use as a context manager. ``url`` is ``http://127.0.0.1:<port>``.

    Usage it reports: prompt text at 4 characters per token plus media tokens (frames x
    :data:`FRAME_TOKENS` + audio), output at 4 characters per token. Like the providers'
    implicit prefix caches, a request whose media part (the first part) equals one answered
    in the last ``prefix_ttl_s`` seconds (same upload or bytes, window, sampling and
    resolution) is reported with those media tokens as cached. Each model call is recorded
    with ``media_seconds`` (the window shown), ``media_cached`` and ``usage``.
    """

    def __init__(self, api_key: str = "test-key-123", labels: dict | None = None, flawed: bool = False):
        self.api_key = api_key
        self.labels = labels or {}
        self.model = Model(flawed=flawed)
        self.models = set(SERVED)  # model names the preflight finds served
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.sent: list[tuple[float, str]] = []      # (monotonic time, SHA-256 of the body) of every POST
        self.answered: list[tuple[float, str]] = []  # the same, when a model call was answered 200
        self.uploads: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.script: list[str] = []   # faults for the next model calls, consumed in order
        self.script_for: dict[str, list[str]] = {}  # the same, for calls on one video (by SHA-256)
        self.script_when: dict[str, list[str]] = {}  # the same, for calls whose prompt contains the key
        self.fault_every = 0          # >0: every n-th model call gets the next of FAULT_CYCLE
        self.hang_seconds = 3.0       # how long a "timeout" fault stalls before answering
        self.model_calls = 0
        self.latency = 0.0            # seconds each model call takes (utilization benchmark)
        self.in_flight = {"media": 0, "text": 0}       # calls being answered, with / without video
        self.max_in_flight = {"media": 0, "text": 0}
        self.prefix_ttl_s = 30.0      # how long a media prefix stays in the emulated implicit cache
        self.prefixes: dict[tuple, float] = {}
        self.probes: dict[str, tuple[float, bool]] = {}  # sha256 -> (duration, has audio)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                return None

            def _send(self, status, body=b"", headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                m = re.match(r"^/v1[a-z0-9]*/(files/[^?]+)", self.path)
                if m and m.group(1) in outer.uploads:
                    return self._send(200, outer.uploads[m.group(1)])
                m = re.match(r"^/v1[a-z0-9]*/models/([^/?]+)", self.path)
                if m:  # Gemini: a model's metadata (the preflight)
                    return outer._gemini_model(self, m.group(1))
                if self.path.split("?")[0] == "/v1/models":  # OpenAI: the model list (the preflight)
                    return outer._openai_models(self)
                return self._send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                self.body_sha = hashlib.sha256(raw).hexdigest()
                with outer.lock:
                    outer.sent.append((time.monotonic(), self.body_sha))
                try:
                    outer._dispatch(self, raw)
                except BrokenPipeError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ---------------------------------------------------------------- bookkeeping
    def calls(self, kind: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if kind is None or r["kind"] == kind]

    def reset(self):
        with self.lock:
            self.requests.clear()

    def _record(self, **rec):
        with self.lock:
            self.requests.append(rec)

    # ---------------------------------------------------------------- dispatch
    def _dispatch(self, h, raw: bytes):
        path = h.path.split("?")[0]
        if re.match(r"^/upload/v1[a-z0-9]*/files", path):
            return self._upload_start(h, raw)
        if path.startswith("/upload-session/"):
            return self._upload_data(h, raw, path.rsplit("/", 1)[1])
        m = re.match(r"^/v1[a-z0-9]*/models/([^:]+):generateContent$", path)
        if m:
            return self._gemini(h, raw, m.group(1))
        if path.endswith("/chat/completions"):
            return self._openai(h, raw)
        h._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})

    def _next_fault(self, media_sha: str | None = None, prompt: str = "") -> str | None:
        with self.lock:
            self.model_calls += 1
            if self.script_for.get(media_sha):
                return self.script_for[media_sha].pop(0)
            for needle, faults in self.script_when.items():
                if faults and needle in prompt:
                    return faults.pop(0)
            if self.script:
                return self.script.pop(0)
            if self.fault_every and self.model_calls % self.fault_every == 0:
                return FAULT_CYCLE[(self.model_calls // self.fault_every - 1) % len(FAULT_CYCLE)]
        return None

    def _reply_fault(self, h, fault: str, kind: str, good_text: str) -> bool:
        """Answer with ``fault`` instead of ``good_text``; False when the fault is "none"."""
        if fault in (None, "none"):
            return False
        if fault == "timeout":
            time.sleep(self.hang_seconds)
        elif fault in ("429", "500", "502", "503", "504", "400", "401", "404"):
            code = int(fault)
            headers = {"Retry-After": "0"} if code in (429, 503) else {}
            status = {429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED",
                      404: "NOT_FOUND"}.get(code, "UNAVAILABLE")
            h._send(code, {"error": {"code": code, "message": f"stand-in fault {code}", "status": status}}, headers)
            return True
        text = {"badjson": good_text[: len(good_text) // 2], "schema": json.dumps({"unexpected": 1}),
                "empty": "", "truncated": good_text[:10], "blocked": ""}.get(fault, good_text)
        finish = {"truncated": ("MAX_TOKENS", "length"), "blocked": ("SAFETY", "content_filter")}.get(
            fault, ("STOP", "stop"))
        if kind == "gemini":
            h._send(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                          "finishReason": finish[0]}]})
        else:
            h._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                       "finish_reason": finish[1]}]})
        return True

    def _gemini_model(self, h, name: str):
        if h.headers.get("x-goog-api-key") != self.api_key:
            return h._send(400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                           "status": "INVALID_ARGUMENT"}})
        if name not in self.models:
            return h._send(404, {"error": {"code": 404, "message": f"models/{name} is not found",
                                           "status": "NOT_FOUND"}})
        h._send(200, {"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": ["generateContent"]})

    def _openai_models(self, h):
        if h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return h._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        h._send(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "stand-in"}
                                                 for m in sorted(self.models)]})

    def _upload_start(self, h, raw):
        if h.headers.get("x-goog-api-key") != self.api_key:
            return h._send(401, {"error": {"code": 401, "message": "API key not valid", "status": "UNAUTHENTICATED"}})
        meta = json.loads(raw or b"{}").get("file", {})
        with self.lock:
            sid = f"s{len(self.sessions)}"
            self.sessions[sid] = {"data": bytearray(), "meta": meta,
                                  "mime": h.headers.get("X-Goog-Upload-Header-Content-Type", "video/mp4")}
        h._send(200, {}, {"X-Goog-Upload-URL": f"{self.url}/upload-session/{sid}", "X-Goog-Upload-Status": "active"})

    def _upload_data(self, h, raw, sid):
        sess = self.sessions[sid]
        sess["data"].extend(raw)
        if "finalize" not in (h.headers.get("X-Goog-Upload-Command") or ""):
            return h._send(200, {}, {"X-Goog-Upload-Status": "active"})
        data = bytes(sess["data"])
        self._probe(hashlib.sha256(data).hexdigest(), data)
        fid = f"files/f{sid[1:]}"
        rec = {"name": fid, "uri": f"{self.url}/v1beta/{fid}", "mimeType": sess["mime"], "state": "ACTIVE",
               "sizeBytes": str(len(data)), "displayName": sess["meta"].get("displayName", ""),
               "sha256Hash": hashlib.sha256(data).hexdigest(),
               "expirationTime": (datetime.now(timezone.utc) + timedelta(hours=48)).isoformat().replace("+00:00", "Z")}
        with self.lock:
            self.uploads[fid] = rec
        self._record(kind="upload", bytes=len(data), sha256=rec["sha256Hash"])
        h._send(200, {"file": rec}, {"X-Goog-Upload-Status": "final"})

    def _probe(self, sha: str, data: bytes | None) -> tuple[float, bool]:
        with self.lock:
            known = self.probes.get(sha)
        if known is None:
            known = probe_bytes(data)
            with self.lock:
                self.probes[sha] = known
        return known

    def _media_usage(self, key: tuple, seconds: float, fps: float, audio: bool, resolution: str | None) -> tuple:
        """``(media tokens, cached media tokens)`` of one media part (see the class docstring)."""
        tokens = max(1, round(seconds * fps)) * FRAME_TOKENS.get(resolution or "", FRAME_TOKENS_DEFAULT)
        tokens += round(seconds * AUDIO_TOKENS_PER_S) if audio else 0
        now = time.monotonic()
        with self.lock:
            seen = self.prefixes.get(key)
            self.prefixes[key] = now
        return tokens, tokens if seen is not None and now - seen <= self.prefix_ttl_s else 0

    def _label(self, sha: str | None) -> str:
        return self.labels.get(sha, "normal")

    def _answer(self, schema: dict | None, prompt: str, media_sha: str | None, reask: bool = False) -> str:
        if schema is None:
            return self._tao_answer(prompt, media_sha)
        value = self.model.answer(schema, prompt, reask)
        if value is None:
            value = fake_from_schema(schema, salt=hashlib.sha1(prompt.encode()).hexdigest()[:6])
        if isinstance(value, dict) and "label" in value:
            value["label"] = self._label(media_sha)
        return json.dumps(value)

    def _tao_answer(self, prompt: str, media_sha: str | None) -> str:
        """A free-text answer in TAO's format for a prompt that starts with ``[[<prompt key>]]``;
        QA items name a subject of their own video (one per video, from the prompt's context)."""
        m = re.match(r"\[\[(\w+)\]\]", prompt)
        key = m.group(1) if m else ""
        s = self.model.subject(prompt[m.end():] if m else prompt)
        block = "=====\nQuestion: What does {s} do at {w}?\n=====\nAnswer: {a}\n=====\nReasoning: Seen at {w}."
        if key == "video_filtering":
            return "Yes"
        if key == "video_anomaly_classification":
            return "A road with cyclists.\n" + self._label(media_sha).capitalize()
        if key == "highlight_timestamp_extraction":
            return "1.5"
        if key.endswith("_mcq"):
            return (f"=====\nMultiple-Choice Question: Who passes {s} first?\nA. A cyclist\nB. A runner\n"
                    "C. A walker\nD. A driver\n======\nAnswer: A\n=====\nReasoning: The cyclist passes first.")
        if key.endswith("_bcq"):
            return block.format(s=s, w="the start", a="Yes, a cyclist passes.")
        if key.endswith("_temporal_localization"):
            return block.format(s=s, w="the pass", a="Start_Time: 00:01, End_Time: 00:03")
        if key.endswith(("_open_qa", "_causal_linkage", "_temporal_event_desc")) or key in (
                "scene_description", "event_summary"):
            return block.format(s=s, w="00:01 and 00:02", a=f"{s[0].upper()}{s[1:]} rides by.")
        return f"Free-text answer for {key or 'an unknown prompt'}."

    def _gemini(self, h, raw, model):
        if h.headers.get("x-goog-api-key") != self.api_key:
            return h._send(401, {"error": {"code": 401, "message": "API key not valid", "status": "UNAUTHENTICATED"}})
        body = json.loads(raw)
        parts = body["contents"][0]["parts"]
        prompt = "".join(p.get("text", "") for p in parts)
        media = [p for p in parts if "fileData" in p or "file_data" in p]
        cfg = body.get("generationConfig") or body.get("generation_config") or {}
        resolution = cfg.get("mediaResolution") or cfg.get("media_resolution")
        sha, meta, seconds, media_tokens, cached = None, None, 0.0, 0, 0
        for p in media:
            fd = p.get("fileData") or p.get("file_data")
            uri = fd.get("fileUri") or fd.get("file_uri")
            name = "files/" + uri.rsplit("/", 1)[1]
            if name not in self.uploads:
                return h._send(403, {"error": {"code": 403, "status": "PERMISSION_DENIED",
                                               "message": f"You do not have permission to access the File "
                                                          f"{name} or it may not exist."}})
            sha = self.uploads[name]["sha256Hash"]
            meta = p.get("videoMetadata") or p.get("video_metadata")
            if meta:  # the SDK may send snake_case; record camelCase as the REST API documents
                meta = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v for k, v in meta.items()}
            duration, audio = self._probe(sha, None)
            start = float(str((meta or {}).get("startOffset", "0s")).rstrip("s"))
            end = float(str((meta or {}).get("endOffset", f"{duration}s")).rstrip("s"))
            seconds = min(end, duration) - start
            key = ("gemini", model, uri, json.dumps(meta, sort_keys=True), resolution)
            media_tokens, cached = self._media_usage(key, seconds, float((meta or {}).get("fps") or 1.0), audio,
                                                     resolution)
        schema = cfg.get("responseJsonSchema") or cfg.get("response_json_schema")
        text = self._answer(schema, prompt, sha, reask=len(body["contents"]) > 1)
        usage = {"promptTokenCount": len(prompt) // 4 + 1 + media_tokens, "cachedContentTokenCount": cached,
                 "candidatesTokenCount": len(text) // 4 + 1}
        self._record(kind="gemini", model=model, prompt=prompt, media_sha=sha, video_metadata=meta, schema=schema,
                     media_resolution=resolution, turns=len(body["contents"]), bytes=len(raw),
                     media_seconds=seconds, media_cached=bool(cached), usage=usage)
        ok = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
              "usageMetadata": usage}
        self._respond(h, "gemini", bool(media), sha, text, ok, prompt)

    def _openai(self, h, raw):
        auth = h.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            return h._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        body = json.loads(raw)
        content = body["messages"][0]["content"]
        prompt, sha, kinds, media_bytes, seconds = "", None, [], 0, 0.0
        digest = hashlib.sha256()
        for c in content if isinstance(content, list) else [{"type": "text", "text": content}]:
            if c["type"] == "text":
                prompt += c["text"]
            elif c["type"] in ("video_url", "image_url"):
                kinds.append(c["type"])
                url = c[c["type"]]["url"]
                data = base64.b64decode(url.split(",", 1)[1])
                media_bytes += len(data)
                digest.update(data)
                if c["type"] == "video_url":
                    sha = hashlib.sha256(data).hexdigest()
                    seconds, audio = self._probe(sha, data)
        media_tokens, cached = 0, 0
        if sha:
            media_tokens, cached = self._media_usage(("openai", body.get("model"), sha), seconds, 1.0, audio, None)
        elif kinds:  # frames: one frame's tokens each
            media_tokens, cached = self._media_usage(("openai", body.get("model"), digest.hexdigest()), len(kinds),
                                                     1.0, False, None)
        rf = body.get("response_format") or {}
        schema = rf.get("json_schema", {}).get("schema") if rf.get("type") == "json_schema" else None
        text = self._answer(schema, prompt, sha, reask=len(body["messages"]) > 1)
        usage = {"prompt_tokens": len(prompt) // 4 + 1 + media_tokens, "completion_tokens": len(text) // 4 + 1,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._record(kind="openai", model=body.get("model"), prompt=prompt, media_sha=sha, media=kinds, schema=schema,
                     media_bytes=media_bytes, turns=len(body["messages"]), bytes=len(raw), media_seconds=seconds,
                     media_cached=bool(cached), usage=usage)
        ok = {"id": "chatcmpl-standin", "object": "chat.completion", "created": 0, "model": body.get("model"),
              "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
              "usage": usage}
        self._respond(h, "openai", bool(kinds), sha, text, ok, prompt)

    @staticmethod
    def _wait_unless_gone(h, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the client closes its connection (as a server
        notices a cancelled request), so a killed job's call stops counting as in flight."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([h.connection], [], [], left)
            if readable:
                try:
                    if h.connection.recv(1, socket.MSG_PEEK) == b"":
                        return False
                except OSError:
                    return False
                time.sleep(min(left, 0.01))  # more bytes (a pipelined request): keep waiting
        return True

    def _respond(self, h, kind: str, with_media: bool, sha: str | None, text: str, ok: dict, prompt: str = "") -> None:
        """Answer a model call after ``latency`` seconds: ``ok``, or the next scripted fault.
        Tracks calls in flight, with and without video, for the concurrency tests."""
        slot = "media" if with_media else "text"
        with self.lock:
            self.in_flight[slot] += 1
            self.max_in_flight[slot] = max(self.max_in_flight[slot], self.in_flight[slot])
        try:
            if self.latency and not self._wait_unless_gone(h, self.latency):
                return  # the client went away (its job was killed): nothing to answer
            if not self._reply_fault(h, self._next_fault(sha, prompt), kind, text):
                h._send(200, ok)
                with self.lock:
                    self.answered.append((time.monotonic(), h.body_sha))
        finally:
            with self.lock:
                self.in_flight[slot] -= 1
