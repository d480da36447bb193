"""The media plane for simulated clients, under /media (our design; real 100ms media is WebRTC).

What a browser's 100ms SDK does, reduced to HTTP calls a load tester can make (docs/simulator.md):

    POST /media/join                          {token, user_name?, user_data?} -> peer
    POST /media/peers/{peer_id}/publish       {video, audio}
    POST /media/peers/{peer_id}/leave
    POST /media/peers/{peer_id}/network-loss  {reason?}   the peer goes silent
    POST /media/peers/{peer_id}/reconnect     {token}     within the window, same peer_id
    GET  /media/peers/{peer_id}
    GET  /media/peers/{peer_id}/remote        the other peers this peer's SDK sees, with their tracks

Refusals follow contract §1.4 and use the `{code, message, details}` body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hms.simulator import bodies
from server.hms.simulator.errors import HmsError, bad_request
from server.hms.simulator.models import JOINED, Peer
from server.hms.simulator.presence import WEBSOCKET_CLOSED

if TYPE_CHECKING:
    from server.hms.simulator.simulator import Simulator


def _joined(peer: Peer) -> dict[str, str]:
    return {
        "peer_id": peer.id,
        "room_id": peer.room_id,
        "session_id": peer.session_id,
        "user_id": peer.user_id,
        "role": peer.role,
    }


def routes(sim: Simulator) -> list[Route]:
    presence, workspace = sim.presence, sim.workspace

    async def join(request: Request) -> Response:
        body = await bodies.json_object(request)
        user_name = bodies.optional_string(body, "user_name", "") or ""
        user_data = bodies.optional_string(body, "user_data", "") or ""
        peer = presence.join(body.get("token"), user_name=user_name, user_data=user_data)
        return JSONResponse(_joined(peer))

    async def publish(request: Request) -> Response:
        body = await bodies.json_object(request)
        video = bodies.optional_bool(body, "video", False)
        audio = bodies.optional_bool(body, "audio", False)
        peer = presence.publish(request.path_params["peer_id"], video=video, audio=audio)
        return JSONResponse(peer.media_json())

    async def leave(request: Request) -> Response:
        return JSONResponse(presence.request_leave(request.path_params["peer_id"]).media_json())

    async def network_loss(request: Request) -> Response:
        body = await bodies.json_object(request)
        reason = bodies.optional_string(body, "reason", WEBSOCKET_CLOSED) or WEBSOCKET_CLOSED
        return JSONResponse(presence.lose_network(request.path_params["peer_id"], reason).media_json())

    async def reconnect(request: Request) -> Response:
        body = await bodies.json_object(request)
        if "token" not in body:
            raise bad_request("Invalid body param: token is required")
        peer = presence.reconnect(request.path_params["peer_id"], body["token"])
        return JSONResponse(peer.media_json())

    async def get_peer(request: Request) -> Response:
        return JSONResponse(workspace.peer(request.path_params["peer_id"]).media_json())

    async def remote_peers(request: Request) -> Response:
        """What a joined peer's SDK shows of the room: the others in its session and their live
        tracks (a proctor's page watches candidates' video with it). 409 unless the peer is joined."""
        peer = workspace.peer(request.path_params["peer_id"])
        if peer.state != JOINED:
            raise HmsError(409, "peer is not connected", ["only a joined peer sees the room"])
        session = workspace.session(peer.session_id)
        others = [p for p in session.present_peers() if p.id != peer.id and p.state == JOINED]
        return JSONResponse({"peers": [p.to_json(tracks=True) for p in others]})

    return [
        Route("/join", join, methods=["POST"]),
        Route("/peers/{peer_id}", get_peer, methods=["GET"]),
        Route("/peers/{peer_id}/remote", remote_peers, methods=["GET"]),
        Route("/peers/{peer_id}/publish", publish, methods=["POST"]),
        Route("/peers/{peer_id}/leave", leave, methods=["POST"]),
        Route("/peers/{peer_id}/network-loss", network_loss, methods=["POST"]),
        Route("/peers/{peer_id}/reconnect", reconnect, methods=["POST"]),
    ]
