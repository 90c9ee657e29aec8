"""`python -m stripe_emulator --port 12111`: run the emulator until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading

from stripe_emulator.server import StripeEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stripe_emulator", description="Stateful emulator of Stripe's HTTP API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--public-url", default=None, help="base URL of hosted pages (default: http://host:port)")
    parser.add_argument(
        "--collection-delay",
        type=float,
        default=0.0,
        help="seconds between finalizing an auto_advance invoice and charging it",
    )
    parser.add_argument(
        "--webhook-retry-base",
        type=float,
        default=5.0,
        help="first webhook retry after this many seconds, doubling each time",
    )
    parser.add_argument("--webhook-max-attempts", type=int, default=8)
    parser.add_argument("--webhook-timeout", type=float, default=10.0)
    parser.add_argument(
        "--ordered-webhooks",
        action="store_true",
        help="deliver webhooks in the order events were generated (default: jittered, out of order, as Stripe may)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    emulator = StripeEmulator(
        port=args.port,
        host=args.host,
        public_url=args.public_url,
        collection_delay=args.collection_delay,
        webhook_retry_base=args.webhook_retry_base,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_timeout=args.webhook_timeout,
        webhook_shuffle=not args.ordered_webhooks,
        verbose=args.verbose,
    )
    url = emulator.start()
    print(f"Stripe emulator listening on {url} (API version 2020-08-27; helpers under {url}/_emulator/)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
