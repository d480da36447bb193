"""A host application's JWKS endpoint for the tests: a real HTTP server on 127.0.0.1 (http.server in a
thread) whose key set the test swaps, counting the fetches; and keys to sign session tokens with."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class SigningKey:
    """A private key, its kid and algorithm, and its public half as a JWK."""

    kid: str
    algorithm: str
    private: Any

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, user: str, role: str = "candidate", event: str = "e1", **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": user, "event": event, "role": role, "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


@dataclass
class JwksServer:
    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}/.well-known/jwks.json"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
