"""The stand-in's gateway: authenticates a key by its SHA-256 from a Redis cache filled from
the store, forgets keys on invalidation, and says whether it would accept a key now."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

import redis
from flask import Flask, Response, jsonify, request

from tests.support.odock.store import CachedKey, KeyStore, now

CACHE_PREFIX = "gw:key:"
HASH_PREFIX = "gw:hash:"


@dataclass
class GatewayLog:
    """Invalidations received (time.time(), key ids), for tests to check their order, and how
    each was answered (time.time(), key ids, status): 200 is an effective invalidation."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    invalidations: list[tuple[float, list[str]]] = field(default_factory=list)
    answers: list[tuple[float, list[str], int]] = field(default_factory=list)
    status_asks: list[tuple[float, list[str]]] = field(default_factory=list)  # proofs asked

    def add(self, key_ids: list[str]) -> None:
        with self.lock:
            self.invalidations.append((time.time(), key_ids))

    def answered(self, key_ids: list[str], status: int) -> None:
        with self.lock:
            self.answers.append((time.time(), key_ids, status))

    def status_asked(self, key_ids: list[str]) -> None:
        with self.lock:
            self.status_asks.append((time.time(), key_ids))

    def status_times_for(self, key_id: str) -> list[float]:
        with self.lock:
            return [at for at, ids in self.status_asks if key_id in ids]

    def times_for(self, key_id: str) -> list[float]:
        with self.lock:
            return [at for at, ids in self.invalidations if key_id in ids]

    def effective_for(self, key_id: str) -> list[float]:
        """When invalidations of this key were answered 200 (the gateway forgot it)."""
        with self.lock:
            return [at for at, ids, status in self.answers if key_id in ids and status == 200]


@dataclass
class GatewayFaults:
    ignore_invalidations: bool = False  # a broken node that keeps serving its cache
    unavailable: bool = False  # invalidations answered 503 (the gateway is down)
    status_unavailable: bool = False  # key status (the proof) answered 503
    # The next invalidations are answered these (status, Retry-After) in order, one each: a
    # gateway shedding load (429) or in maintenance (503) that says how long to stay away.
    throttled: list[tuple[int, str]] = field(default_factory=list)
    status_throttled: list[tuple[int, str]] = field(default_factory=list)  # the same, key status
    # While set, invalidations hang until `release` is set, then answer 503 (the call died).
    hang: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def heal(self) -> None:
        self.unavailable = self.status_unavailable = False
        self.throttled.clear()
        self.status_throttled.clear()
        self.hang.clear()
        self.release.set()


class Gateway:
    def __init__(self, store: KeyStore, redis_url: str) -> None:
        self.store = store
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)

    def authenticate(self, value: str) -> CachedKey | None:
        """The key a request carries, from the cache or else the store (then cached)."""
        key_hash = hashlib.sha256(value.encode()).hexdigest()
        cached = self.redis.get(CACHE_PREFIX + key_hash)
        if cached is not None:
            return CachedKey(**json.loads(cached)) if cached != b"null" else None
        found = self.store.key_for_hash(key_hash)
        entry = json.dumps(found.__dict__ if found else None)
        pipe = self.redis.pipeline()
        pipe.set(CACHE_PREFIX + key_hash, entry)
        if found:
            pipe.set(HASH_PREFIX + found.id, key_hash)
        pipe.execute()
        return found

    def would_accept(self, key_id: str) -> bool:
        key_hash = self.redis.get(HASH_PREFIX + key_id)
        cached = self.redis.get(CACHE_PREFIX + key_hash.decode()) if key_hash else None
        if cached is not None and cached != b"null":
            return bool(json.loads(cached)["active"])
        stored_hash = self.store.hash_of(key_id)
        found = self.store.key_for_hash(stored_hash) if stored_hash else None
        return bool(found and found.active)

    def forget(self, key_ids: list[str]) -> None:
        for key_id in key_ids:
            key_hash = self.redis.get(HASH_PREFIX + key_id)
            known = key_hash.decode() if key_hash else self.store.hash_of(key_id)
            if known:
                self.redis.delete(CACHE_PREFIX + known)


def create_gateway_app(
    gateway: Gateway, *, secret: str, faults: GatewayFaults, log: GatewayLog
) -> Flask:
    app = Flask("odock-stand-in-gateway")

    def internal_allowed() -> bool:
        return request.headers.get("Authorization") == f"Bearer {secret}"

    @app.post("/v1/internal/cache/invalidate")
    def invalidate() -> Response | tuple[Response, int]:
        if not internal_allowed():
            return jsonify({"error": "unauthorised"}), 401
        key_ids = [str(k) for k in (request.get_json(silent=True) or {}).get("key_ids", [])]
        log.add(key_ids)
        if faults.hang.is_set():
            faults.release.wait(timeout=120)
            log.answered(key_ids, 503)
            return jsonify({"error": "the node died mid-call"}), 503
        if faults.unavailable:
            log.answered(key_ids, 503)
            return jsonify({"error": "gateway unavailable"}), 503
        if faults.throttled:
            status, retry_after = faults.throttled.pop(0)
            log.answered(key_ids, status)
            answer = jsonify({"error": "slow down"})
            answer.headers["Retry-After"] = retry_after
            return answer, status
        try:
            if not faults.ignore_invalidations:
                gateway.forget(key_ids)
        except redis.RedisError:
            log.answered(key_ids, 503)
            return jsonify({"error": "key cache unavailable"}), 503
        log.answered(key_ids, 200)
        return jsonify({"invalidated": len(key_ids)})

    @app.post("/v1/internal/keys/status")
    def status() -> Response | tuple[Response, int]:
        if not internal_allowed():
            return jsonify({"error": "unauthorised"}), 401
        key_ids = [str(k) for k in (request.get_json(silent=True) or {}).get("key_ids", [])]
        log.status_asked(key_ids)
        if faults.status_unavailable:
            return jsonify({"error": "gateway unavailable"}), 503
        if faults.status_throttled:
            status, retry_after = faults.status_throttled.pop(0)
            answer = jsonify({"error": "slow down"})
            answer.headers["Retry-After"] = retry_after
            return answer, status
        try:
            answers = [
                {"id": k, "accepted": gateway.would_accept(k), "checked_at": now().isoformat()}
                for k in key_ids
            ]
        except redis.RedisError:
            return jsonify({"error": "key cache unavailable"}), 503
        return jsonify({"keys": answers})

    @app.post("/v1/chat/completions")
    def completion() -> Response | tuple[Response, int]:
        value = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:
            key = gateway.authenticate(value) if value else None
        except redis.RedisError:
            return jsonify({"error": {"message": "key cache unavailable"}}), 503
        if key is None or not key.active:
            return jsonify({"error": {"message": "invalid or revoked API key"}}), 401
        return jsonify({"object": "chat.completion", "key_id": key.id, "choices": []})

    return app
