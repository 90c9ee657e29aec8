"""A stateful emulator of Stripe's HTTP API for local runs and tests (never imported by the product).

    emulator = StripeEmulator(port=0)
    url = emulator.start()          # http://127.0.0.1:<port>
    client = stripe.StripeClient("sk_test_x", base_addresses={"api": url})
    ...
    emulator.stop()

See docs/stripe-emulator.md for endpoints, test helpers, faults and the differences from Stripe.
"""

from stripe_emulator.resources import API_VERSION
from stripe_emulator.server import StripeEmulator

__all__ = ["API_VERSION", "StripeEmulator"]
