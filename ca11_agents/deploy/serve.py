"""Serve a saved learner over HTTP: ``python -m ca11_agents.deploy.serve CHECKPOINT [--algo dreamer]
[--backend torch|onnx] [--host 127.0.0.1] [--port 8000] [--workers N]``. Needs the ``deploy`` extra (``pip install ".[deploy]"``).

The checkpoint goes through the learner's safe ``load`` (``--backend torch``) or, for ``--backend onnx``, CHECKPOINT
is an ONNX file written by ``export_onnx`` with its ``.json`` sidecar; a file either refuses ends the command with
status 2 before anything listens. It binds to the loopback unless ``--host`` says otherwise. The endpoints are those
of ``ca11_agents.deploy.server`` (``create_app``).
"""

from __future__ import annotations

import argparse
import sys

from ca11_agents.deploy.server import ALGOS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ca11_agents.deploy.serve",
        description='Serve a saved learner\'s deterministic actions over HTTP (needs pip install ".[deploy]").',
    )
    parser.add_argument("checkpoint", help="a learner's saved .zip, or an exported .onnx (with its .json sidecar)")
    parser.add_argument("--algo", choices=sorted(ALGOS), default="dreamer", help="the learner (torch backend)")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: the loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-sessions", type=int, default=256, help="open sessions at most")
    parser.add_argument("--session-ttl", type=float, default=600.0, help="seconds before an idle session expires")
    parser.add_argument("--workers", type=int, default=1,
                        help="inference processes (each a copy of the policy; sessions stay in the server process, "
                             "so any worker answers any session); 1: inference in the server process")
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ca11_agents.deploy.server import create_app, load_policy

    if args.workers < 1:
        print(f"serve: --workers must be a positive integer, got {args.workers}", file=sys.stderr)
        return 2
    try:
        policy, info = load_policy(args.checkpoint, args.algo, args.backend)
        if args.workers > 1:
            from ca11_agents.deploy.server import PooledPolicy

            policy = PooledPolicy(args.checkpoint, args.algo, args.backend, args.workers)
            info["workers"] = args.workers
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"serve: refusing to start: {error}", file=sys.stderr)
        return 2
    app = create_app(policy, model_info=info, max_sessions=args.max_sessions, session_ttl=args.session_ttl)
    import uvicorn

    print(f"serve: {info['learner']} ({info['backend']}) from {info['checkpoint']} sha256 "
          f"{info['checkpoint_sha256'][:12]} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)  # fmt: skip
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    finally:
        if hasattr(policy, "close"):
            policy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
