"""Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`.

The `standardwebhooks` package (the specification's own Python library, MIT, no dependencies) signs;
the secret is checked at start-up (server/config.py `webhook_key`), so a bad one never gets here.
Pure: the timestamp is the caller's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        return self._webhook.sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three headers of one attempt (a retry is signed again with its own timestamp)."""
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(message_id, timestamp, body),
        }
