"""`python -m local.hubspot_sandbox [--port 8765]`: a HubSpot emulator for curl and manual tests."""

from __future__ import annotations

import argparse
import json
import threading

from .server import SandboxServer
from .state import TIERS, SandboxConfig, SandboxState


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.hubspot_sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tier", choices=sorted(TIERS), default="free", help="HubSpot limits to apply")
    args = parser.parse_args()
    config = SandboxConfig()
    config.update({"tier": args.tier})
    state = SandboxState(config=config)
    token = state.add_private_app_token()
    client_id, client_secret, refresh = state.add_oauth_app()
    server = SandboxServer(state, port=args.port).start()
    print(f"HubSpot sandbox at {server.url}")
    print(json.dumps({"accessToken": token}), "(private app secret)")
    print(
        json.dumps({"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh}),
        "(OAuth secret)",
    )
    print(f"inspect:   curl {server.url}/__sandbox/state")
    print(f"configure: curl -X POST {server.url}/__sandbox/config -d '{{\"ten_second_limit\": 10}}'")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
