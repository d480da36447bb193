"""The REST API under /v2 (contract §2), authenticated with management tokens (§1.2, §2.1).

Every call first meets the REST faults (`rest.429`, `rest.500`, `rest.timeout`), then the
management-token check (401 "Token validation error"), then its handler. Handlers return JSON data
or raise `HmsError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hms.simulator import bodies, times
from server.hms.simulator.auth import verify_management_token
from server.hms.simulator.errors import HmsError, bad_request, not_found
from server.hms.simulator.faults import Occasion
from server.hms.simulator.models import Peer, Room, Session
from server.hms.simulator.pages import paginate, parse_limit
from server.hms.simulator.room_bodies import parse_room_body

if TYPE_CHECKING:
    from server.hms.simulator.simulator import Simulator

Handler = Callable[[Request], Awaitable[Any]]
DEFAULT_PRESIGN_S = 3 * 24 * 3600  # asset API default for S3 (§2.6)
MAX_PRESIGN_S = 7 * 24 * 3600


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ws = sim.workspace

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            await self._faults(request)
            c = self.sim.config
            verify_management_token(
                request.headers.get("authorization"),
                access_key=c.access_key,
                secret=c.secret,
                now=self.sim.clock(),
                skew_s=c.skew_s,
            )
            return JSONResponse(await handler(request))

        return run

    async def _faults(self, request: Request) -> None:
        path = "/v2" + request.scope["path"][len(request.scope.get("root_path", "")) :]
        occasion = Occasion(path=path)
        faults = self.sim.faults
        if faults.take("rest.429", occasion, detail=request.method):
            raise HmsError(429, "Too many requests", ["rate limit exceeded, retry after 45 seconds"])
        if faults.take("rest.500", occasion, detail=request.method):
            raise HmsError(500, "Internal server error", ["injected fault"])
        timeout = faults.take("rest.timeout", occasion, detail=request.method)
        if timeout is not None:
            await asyncio.sleep(timeout.seconds)  # then answer normally: the client gave up long ago

    # rooms (§2.2)

    def _room_json(self, room: Room, *, listed: bool = False) -> dict[str, Any]:
        c = self.sim.config
        return room.to_json(customer_id=c.account_id, app_id=c.app_id, listed=listed)

    def _room_fields(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        return parse_room_body(
            body, creating=creating, template_id=self.ws.template_id, template_region=self.ws.template_region
        )

    async def create_room(self, request: Request) -> Any:
        fields = self._room_fields(await bodies.json_object(request), creating=True)
        return self._room_json(self.ws.upsert_room(fields, now=self.sim.clock()))

    async def get_room(self, request: Request) -> Any:
        return self._room_json(self.ws.room(request.path_params["room_id"]))

    async def update_room(self, request: Request) -> Any:
        room = self.ws.room(request.path_params["room_id"])
        fields = self._room_fields(await bodies.json_object(request), creating=False)
        return self._room_json(self.ws.update_room(room, fields, now=self.sim.clock()))

    async def list_rooms(self, request: Request) -> Any:
        q = request.query_params
        enabled = bodies.flag(q, "enabled", True)
        after, before = bodies.moment(q, "after"), bodies.moment(q, "before")
        name, template_id = q.get("name"), q.get("template_id")
        rooms = [
            r
            for r in self.ws.rooms.values()
            if (enabled is None or r.enabled == enabled)
            and (not name or r.name.lower() == name.lower())
            and (not template_id or r.template_id == template_id)
            and (after is None or r.created_at >= after)
            and (before is None or r.created_at <= before)
        ]
        return self._page(q, rooms, lambda r: self._room_json(r, listed=True))

    def _page(self, query: Any, items: list[Any], render: Callable[[Any], Any]) -> dict[str, Any]:
        return paginate(
            items,
            start=query.get("start"),
            limit=parse_limit(query.get("limit")),
            ident=lambda item: item.id,
            render=render,
            position=self.ws.rank,
        )

    # active rooms (§2.3)

    def _active(self, request: Request) -> tuple[Room, Session]:
        room = self.ws.room(request.path_params["room_id"])
        session = self.ws.active_session(room)
        if session is None:
            raise not_found("active room not found")
        return room, session

    def _present_peer(self, session: Session, peer_id: str) -> Peer:
        peer = session.peers.get(peer_id)
        if peer is None or not peer.present:
            raise not_found("peer not found")
        return peer

    async def active_room(self, request: Request) -> Any:
        room, session = self._active(request)
        return {
            "id": room.id,
            "name": room.name,
            "customer_id": self.sim.config.account_id,
            "session": {
                "id": session.id,
                "created_at": times.nanos(session.created_at),
                "peers": [p.id for p in session.present_peers()],
            },
        }

    async def list_peers(self, request: Request) -> Any:
        _, session = self._active(request)
        user_id, role = request.query_params.get("user_id"), request.query_params.get("role")
        peers = [
            p
            for p in session.present_peers()
            if (not user_id or p.user_id == user_id) and (not role or p.role == role)
        ]
        return {"peers": {p.id: p.to_json() for p in peers}}

    async def get_peer(self, request: Request) -> Any:
        _, session = self._active(request)
        return self._present_peer(session, request.path_params["peer_id"]).to_json(tracks=True)

    async def update_peer(self, request: Request) -> Any:
        _, session = self._active(request)
        peer = self._present_peer(session, request.path_params["peer_id"])
        body = await bodies.json_object(request)
        name, role = bodies.optional_string(body, "name"), bodies.optional_string(body, "role")
        metadata = bodies.optional_string(body, "metadata")
        if role is not None and role not in self.sim.config.roles:
            raise bad_request("Invalid body param: role", f"role {role!r} is not in the template")
        if name is not None:
            peer.name = name
        if metadata is not None:
            peer.metadata = metadata
        if role is not None and role != peer.role:
            previous, peer.role = peer.role, role
            self.sim.presence.role_changed(peer, previous)
        return peer.to_json(tracks=True)

    async def remove_peers(self, request: Request) -> Any:
        _, session = self._active(request)
        body = await bodies.json_object(request)
        peer_id, role = bodies.optional_string(body, "peer_id"), bodies.optional_string(body, "role")
        reason = bodies.optional_string(body, "reason", "") or ""
        if peer_id:
            peers = [self._present_peer(session, peer_id)]
        elif role:
            peers = [p for p in session.present_peers() if p.role == role]
        else:
            raise bad_request("Invalid body param: peer_id or role is required")
        self.sim.presence.remove(peers, reason)
        return {"message": "peer remove request submitted"}

    async def send_message(self, request: Request) -> Any:
        _, session = self._active(request)
        body = await bodies.json_object(request)
        message = bodies.optional_string(body, "message")
        if not message:
            raise bad_request("Invalid body param: message is required")
        peer_id, role = bodies.optional_string(body, "peer_id"), bodies.optional_string(body, "role")
        kind = bodies.optional_string(body, "type", "chat")
        if peer_id:
            targets = [self._present_peer(session, peer_id)]
        else:
            targets = [p for p in session.present_peers() if not role or p.role == role]
        for peer in targets:
            peer.messages.append({"message": message, "type": kind, "sender": "api"})
        return {"message": "message sent"}

    async def end_room(self, request: Request) -> Any:
        room = self.ws.room(request.path_params["room_id"])
        session = self.ws.active_session(room)
        if session is None:
            raise not_found("session not found")
        body = await bodies.json_object(request)
        reason = bodies.optional_string(body, "reason", "") or ""
        lock = bodies.optional_bool(body, "lock", False)
        self.sim.presence.end_room(room, session, reason=reason, lock=lock)
        return {"message": "session is ending"}

    # sessions (§2.4)

    def _session_json(self, session: Session) -> dict[str, Any]:
        return session.to_json(customer_id=self.sim.config.account_id)

    async def list_sessions(self, request: Request) -> Any:
        q = request.query_params
        active = bodies.flag(q, "active", True)
        after, before = bodies.moment(q, "after"), bodies.moment(q, "before")
        room_id = q.get("room_id")
        sessions = [
            s
            for s in self.ws.sessions.values()
            if (not room_id or s.room_id == room_id)
            and (active is None or s.active == active)
            and (after is None or s.created_at >= after)
            and (before is None or s.created_at <= before)
        ]
        return self._page(q, sessions, self._session_json)

    async def get_session(self, request: Request) -> Any:
        return self._session_json(self.ws.session(request.path_params["session_id"]))

    # recording assets (§2.6)

    async def list_assets(self, request: Request) -> Any:
        q = request.query_params
        keys = ("room_id", "session_id", "status", "type")
        wanted = {k: q[k] for k in keys if q.get(k)}
        assets = [a for a in self.ws.assets.values() if all(getattr(a, k) == v for k, v in wanted.items())]
        return self._page(q, assets, lambda a: a.to_json())

    async def get_asset(self, request: Request) -> Any:
        return self.ws.asset(request.path_params["asset_id"]).to_json()

    async def presigned_url(self, request: Request) -> Any:
        asset = self.ws.asset(request.path_params["asset_id"])
        raw = request.query_params.get("presign_duration") or str(DEFAULT_PRESIGN_S)
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PRESIGN_S:
            raise bad_request(
                "Invalid query param: presign_duration", f"presign_duration must be 1-{MAX_PRESIGN_S} seconds"
            )
        if asset.status != "completed":
            raise bad_request("Recording asset is not available", f"asset status is {asset.status!r}")
        url = await self.sim.storage.presign(asset.key, int(raw))
        return {"id": asset.id, "path": asset.path, "url": url, "expiry": int(raw)}


def routes(sim: Simulator) -> list[Route]:
    api = RestApi(sim)
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/rooms", api.create_room),
        ("GET", "/rooms", api.list_rooms),
        ("GET", "/rooms/{room_id}", api.get_room),
        ("POST", "/rooms/{room_id}", api.update_room),
        ("GET", "/active-rooms/{room_id}", api.active_room),
        ("GET", "/active-rooms/{room_id}/peers", api.list_peers),
        ("GET", "/active-rooms/{room_id}/peers/{peer_id}", api.get_peer),
        ("POST", "/active-rooms/{room_id}/peers/{peer_id}", api.update_peer),
        ("POST", "/active-rooms/{room_id}/remove-peers", api.remove_peers),
        ("POST", "/active-rooms/{room_id}/send-message", api.send_message),
        ("POST", "/active-rooms/{room_id}/end-room", api.end_room),
        ("GET", "/sessions", api.list_sessions),
        ("GET", "/sessions/{session_id}", api.get_session),
        ("GET", "/recording-assets", api.list_assets),
        ("GET", "/recording-assets/{asset_id}", api.get_asset),
        ("GET", "/recording-assets/{asset_id}/presigned-url", api.presigned_url),
    ]
    return [Route(path, api.endpoint(handler), methods=[method]) for method, path, handler in table]
