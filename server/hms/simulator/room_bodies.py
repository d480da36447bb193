"""Room bodies: the validation 100ms applies to create and update (contract §2.2). Pure.

`parse_room_body` returns the Room fields to set; it raises `HmsError(400, ...)` with 100ms's own
messages where the docs give them ("Error: region not supported", "Error: template not found",
"Invalid body param: template. Use template_id", "Bucket location is missing", "Invalid upload
configuration", "Invalid body param: max_duration_seconds less than 120 seconds" / "greater than
43200 seconds") and "Invalid body param: <field>" where they do not. Unknown fields are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from server.hms.simulator.errors import bad_request

NAME = re.compile(r"^[a-zA-Z0-9.\-:_]+$")
REGIONS = ("in", "us", "eu", "auto")
UPLOAD_TYPES = ("s3", "gs", "oss", "azure")
MIN_DURATION_S, MAX_DURATION_S = 120, 43200
MAX_SIZE, MAX_LARGE_SIZE = 2500, 20000


def _invalid(field: str, detail: str) -> Exception:
    return bad_request(f"Invalid body param: {field}", detail)


def _string(body: dict[str, Any], field: str) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string")
    return value


def _recording_info(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("recording_info", "recording_info must be an object")
    enabled = value.get("enabled", False)
    if not isinstance(enabled, bool):
        raise _invalid("recording_info", "recording_info.enabled must be a boolean")
    upload = value.get("upload_info")
    if upload is not None:
        if not isinstance(upload, dict) or upload.get("type") not in UPLOAD_TYPES:
            raise bad_request(
                "Invalid upload configuration", f"upload_info.type must be one of {UPLOAD_TYPES}"
            )
        if not isinstance(upload.get("location"), str) or not upload["location"]:
            raise bad_request("Bucket location is missing")
    return dict(value)


def _webhook(value: object) -> dict[str, Any] | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise _invalid("webhook", "webhook must be an object {url, headers}")
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _invalid("webhook", "webhook.url must be an http(s) URL")
    headers = value.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise _invalid("webhook", "webhook.headers must map strings to strings")
    return {"url": url, "headers": dict(headers)}


def _int(body: dict[str, Any], field: str) -> int:
    value = body[field]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(field, f"{field} must be an integer")
    return value


def parse_room_body(
    body: dict[str, Any], *, creating: bool, template_id: str, template_region: str
) -> dict[str, Any]:
    """The fields of a create (`creating`) or update body, validated; see the module docstring."""
    if "template" in body:
        raise bad_request("Invalid body param: template. Use template_id")
    fields: dict[str, Any] = {}
    if "name" in body:
        name = _string(body, "name")
        if not NAME.match(name):
            raise _invalid("name", "name may contain only a-z A-Z 0-9 . - : _")
        fields["name"] = name
    if "description" in body:
        fields["description"] = _string(body, "description")
    if creating and "template_id" in body:
        if _string(body, "template_id") != template_id:
            raise bad_request("Error: template not found", f"template {body['template_id']!r} does not exist")
        fields["template_id"] = template_id
    if "region" in body:
        region = body["region"]
        if region not in REGIONS:
            raise bad_request("Error: region not supported", f"region must be one of {REGIONS}")
        fields["region"] = template_region if region == "auto" else region
    if "recording_info" in body:
        fields["recording_info"] = _recording_info(body["recording_info"])
    if "large_room" in body:
        if not isinstance(body["large_room"], bool):
            raise _invalid("large_room", "large_room must be a boolean")
        fields["large_room"] = body["large_room"]
    if "size" in body:
        size = _int(body, "size")
        most = MAX_LARGE_SIZE if fields.get("large_room") else MAX_SIZE
        if not 0 < size <= most:
            raise _invalid("size", f"size must be between 1 and {most}")
        fields["size"] = size
    if "max_duration_seconds" in body:
        seconds = _int(body, "max_duration_seconds")
        if seconds < MIN_DURATION_S:
            raise bad_request("Invalid body param: max_duration_seconds less than 120 seconds")
        if seconds > MAX_DURATION_S:
            raise bad_request("Invalid body param: max_duration_seconds greater than 43200 seconds")
        fields["max_duration_seconds"] = seconds
    if "webhook" in body:
        fields["webhook"] = _webhook(body["webhook"])
    if "polls" in body:
        polls = body["polls"]
        if not isinstance(polls, list) or not all(isinstance(p, str) for p in polls):
            raise _invalid("polls", "polls must be a list of poll ids")
        fields["polls"] = list(polls)
    if not creating and "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise _invalid("enabled", "enabled must be a boolean")
        fields["enabled"] = body["enabled"]
    return fields
