"""hubspot-activation: send audience members to the API and look after the sync.

Routes called, relative to the API base URL (--url or HUBSPOT_ACTIVATION_URL), with
"Authorization: Bearer <token>" (--token or HUBSPOT_ACTIVATION_TOKEN):

  send FILE           POST /activations (batches of native-format profiles)
  status              GET  /sync/status
  issues              GET  /sync/issues?status=&limit=&cursor=
  replay [--dry-run]  POST /replay {"dryRun": bool, "cursor"?}
  contact EMAIL       GET  /contacts/{email}
  reconcile [--dry-run] [--email E ...]
                      POST /reconcile {"dryRun", "cursor"?, "emails"?} until the walk is done
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from .api import ApiClient, ApiError
from .members import MemberFileError, detect_format
from .reconcile import reconcile
from .send import DEFAULT_BATCH_SIZE, send_file

URL_VARIABLE = "HUBSPOT_ACTIVATION_URL"
TOKEN_VARIABLE = "HUBSPOT_ACTIVATION_TOKEN"  # noqa: S105 - the variable's name, not a token
EXIT_FAILED = 1
EXIT_USAGE = 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    # The connection options go on every subcommand, so they can follow it as well as precede it.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url", help=f"API base URL, e.g. http://127.0.0.1:3000 (default: ${URL_VARIABLE})"
    )
    # Generated tokens may start with "-": pass them as --token=VALUE (or the environment variable).
    connection.add_argument("--token", help=f"ingest token, as --token=VALUE (default: ${TOKEN_VARIABLE})")
    connection.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    connection.add_argument(
        "--max-retries", type=int, default=5, help="retries of a 429 or 5xx answer (default 5)"
    )
    parser = argparse.ArgumentParser(
        prog="hubspot-activation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", parents=[connection], help="post a CSV or JSONL of audience members")
    send.add_argument("file", type=Path)
    send.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file's extension")
    send.add_argument(
        "--batch-size", type=_positive, default=DEFAULT_BATCH_SIZE, help="profiles per request (default 1000)"
    )
    send.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    sub.add_parser("status", parents=[connection], help="the sync's state: GET /sync/status")
    issues = sub.add_parser(
        "issues", parents=[connection], help="failed, held or excluded contacts: GET /sync/issues"
    )
    issues.add_argument("--status", choices=["failed", "held", "excluded", "deleted"])
    issues.add_argument("--limit", type=_positive)
    issues.add_argument("--cursor", help="the cursor a previous page returned")
    replay = sub.add_parser("replay", parents=[connection], help="re-sync failed contacts: POST /replay")
    replay.add_argument("--dry-run", action="store_true", help="only report what would be replayed")
    replay.add_argument("--cursor", help="continue a replay that answered more: true")
    contact = sub.add_parser(
        "contact", parents=[connection], help="one contact's sync state: GET /contacts/{email}"
    )
    contact.add_argument("email")
    reconcile = sub.add_parser(
        "reconcile",
        parents=[connection],
        help="compare HubSpot with the ledger and repair the drift: POST /reconcile",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="only report the drift found")
    reconcile.add_argument(
        "--email", action="append", dest="emails", metavar="E", help="check just this contact (repeatable)"
    )
    reconcile.add_argument("--cursor", help="resume a walk that stopped (the cursor it printed)")
    reconcile.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _print_json(answer: Any, out: TextIO) -> None:
    out.write(json.dumps(answer, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _send(client: ApiClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    fmt = detect_format(args.file, args.format)
    progress = err if not args.no_progress and err.isatty() else None
    report = send_file(client, args.file, fmt, args.batch_size, progress)
    out.write(report.render() + "\n")
    return EXIT_FAILED if report.failure else 0


def _reconcile(client: ApiClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.emails and args.cursor:
        err.write("hubspot-activation: error: --cursor resumes a walk of every contact; not with --email\n")
        return EXIT_USAGE
    progress = err if not args.no_progress and err.isatty() else None
    totals = reconcile(client, args.dry_run, args.emails, args.cursor, progress)
    out.write(totals.render() + "\n")
    return EXIT_FAILED if totals.failure else 0


def _query(client: ApiClient, args: argparse.Namespace) -> Any:
    """The answer of one of the sync routes."""
    if args.command == "status":
        return client.get("/sync/status")
    if args.command == "issues":
        params = {"status": args.status, "limit": args.limit, "cursor": args.cursor}
        return client.get("/sync/issues", {key: value for key, value in params.items() if value is not None})
    if args.command == "replay":
        # Not idempotent: a replay is retried only when the API certainly did not start it.
        body = {"dryRun": args.dry_run, **({"cursor": args.cursor} if args.cursor else {})}
        return client.post("/replay", body, idempotent=False)
    return client.get(f"/contacts/{quote(args.email.strip(), safe='@')}")


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    client_factory: Callable[..., ApiClient] = ApiClient,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    url = args.url or os.environ.get(URL_VARIABLE)
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not url or not token:
        missing = "--url (or $" + URL_VARIABLE + ")" if not url else "--token (or $" + TOKEN_VARIABLE + ")"
        err.write(f"hubspot-activation: error: {missing} is required\n")
        return EXIT_USAGE
    client = client_factory(url, token, max_retries=args.max_retries, timeout=args.timeout)
    try:
        if args.command == "send":
            return _send(client, args, out, err)
        if args.command == "reconcile":
            return _reconcile(client, args, out, err)
        _print_json(_query(client, args), out)
    except MemberFileError as exc:
        err.write(f"hubspot-activation: error: {exc}\n")
        return EXIT_USAGE
    except ApiError as exc:
        err.write(f"hubspot-activation: {args.command} failed: {exc.message}\n")
        return EXIT_FAILED
    return 0
