"""``cleanroom serve``: run the clean-room service."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from cleanroom.cli import defaults
from cleanroom.errors import ConfigurationError
from cleanroom.server.settings import MIB, ServerSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the clean-room service")
    parser.add_argument("--host", default=defaults.host(), help="address to bind")
    parser.add_argument(
        "--port", type=defaults.port_number, default=defaults.port(), help="port to bind"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir(),
        help="state directory (SQLite, sealed models)",
    )
    defaults.add_tee_argument(
        parser,
        "TEE to run on: evidence from configfs-tsm (or /dev/sev-guest for SEV-SNP), or the "
        "simulated TEE for development",
    )
    parser.add_argument(
        "--registration",
        choices=["open", "closed"],
        default=None,
        help="open: anyone may sign up; closed: accounts only via `cleanroom user add` "
        "(default: open on loopback, closed otherwise)",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="attested TLS: a TLS key made in the TEE, evidence in its certificate, fresh "
        "evidence per connection (default: on unless binding a loopback address)",
    )
    parser.add_argument(
        "--peers",
        type=Path,
        default=None,
        help="TOML/JSON file of routes only attested upstream clean rooms may call "
        "(see docs/attested-tls.md); implies --tls",
    )
    _service_url_option(
        parser,
        "amd-kds",
        ServerSettings.amd_kds_url,
        on="SEV-SNP: complete evidence from this AMD Key Distribution Service (the VCEK "
        "chain when the host gives none, and the current CRL, which clients require by "
        "default) (%(default)s)",
        off="SEV-SNP: send evidence as the host gives it (clients must then fetch the CRL "
        "themselves, or they refuse it)",
    )
    _service_url_option(
        parser,
        "intel-pcs",
        ServerSettings.intel_pcs_url,
        on="TDX and SGX attested-TLS peers: judge their evidence with the current "
        "collateral from this Intel Provisioning Certification Service (%(default)s)",
        off="judge TDX and SGX peers' evidence with the collateral their hosts send",
    )
    limits = parser.add_argument_group("limits (defaults in parentheses)")
    limits.add_argument(
        "--max-request-mib",
        type=defaults.positive_int,
        default=ServerSettings.max_request_bytes // MIB,
        metavar="MIB",
        help="largest sealed request body, in MiB (%(default)s)",
    )
    limits.add_argument(
        "--max-model-mib",
        type=defaults.positive_int,
        default=ServerSettings.max_model_bytes // MIB,
        metavar="MIB",
        help="largest sealed model upload, in MiB (%(default)s)",
    )
    limits.add_argument(
        "--session-hours",
        type=defaults.positive_int,
        default=ServerSettings.token_ttl_s // 3600,
        metavar="HOURS",
        help="how long a sign-in token stays valid (%(default)s)",
    )
    limits.add_argument(
        "--replay-window",
        type=defaults.positive_int,
        default=ServerSettings.replay_window_s,
        metavar="SECONDS",
        help="how old (or how far in the future) a sealed request may be (%(default)s)",
    )
    parser.set_defaults(handler=run)


def _service_url_option(
    parser: argparse.ArgumentParser, name: str, default: str | None, *, on: str, off: str
) -> None:
    """``--NAME URL`` (default *default*) and ``--no-NAME`` (None), one or the other."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", metavar="URL", default=default, help=on)
    group.add_argument(
        f"--no-{name}", dest=name.replace("-", "_"), action="store_const", const=None, help=off
    )


def settings_from(args: argparse.Namespace, *, open_registration: bool) -> ServerSettings:
    """The service's settings from ``serve``'s arguments."""
    return ServerSettings(
        data_dir=args.data_dir,
        tee=args.tee,
        open_registration=open_registration,
        token_ttl_s=args.session_hours * 3600,
        replay_window_s=args.replay_window,
        max_request_bytes=args.max_request_mib * MIB,
        max_model_bytes=args.max_model_mib * MIB,
        amd_kds_url=args.amd_kds,
        intel_pcs_url=args.intel_pcs,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from cleanroom.atls.settings import AtlsSettings, load_peer_routes
    from cleanroom.server.runner import serve_forever
    from cleanroom.server.tee import SIMULATION_WARNING

    registration = args.registration or ("open" if is_loopback(args.host) else "closed")
    settings = settings_from(args, open_registration=registration == "open")
    if args.tee == "simulated":
        print(f"WARNING: {SIMULATION_WARNING}", file=sys.stderr)
        print(
            f"simulated root for attestation policies: {args.data_dir / 'simulated-root.pem'}",
            file=sys.stderr,
        )
    use_tls = args.tls if args.tls is not None else not is_loopback(args.host)
    if args.peers is not None and args.tls is False:
        raise ConfigurationError("--peers needs attested TLS; drop --no-tls")
    tls = None
    if use_tls or args.peers is not None:
        routes = load_peer_routes(args.peers) if args.peers is not None else ()
        tls = AtlsSettings(
            routes=routes, hosts=tuple(dict.fromkeys(("localhost", "127.0.0.1", args.host)))
        )
    scheme = "https" if tls is not None else "http"
    print(
        f"cleanroom serving on {scheme}://{args.host}:{args.port} "
        f"(tee={args.tee}, registration={registration}, data={args.data_dir}"
        f"{', attested TLS' if tls is not None else ''})",
        file=sys.stderr,
    )
    serve_forever(settings, args.host, args.port, tls=tls)
    return 0
